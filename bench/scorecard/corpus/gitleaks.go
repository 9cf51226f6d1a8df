package corpus

import (
	"strings"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// GitleaksVersion is the gitleaks module version compared against (go.mod).
const GitleaksVersion = "v8.30.1"

// NewGitleaks returns the gitleaks detector with its default rules and its
// logger silenced.
func NewGitleaks() (*detect.Detector, error) {
	logging.Logger = logging.Logger.Level(zerolog.Disabled)
	return detect.NewDetectorDefaultConfig()
}

// GitleaksResult is the secret score of gitleaks on the corpus.
type GitleaksResult struct {
	Planted, Found, Findings, FP int
	Misses                       []Label
}

// Recall is Found/Planted.
func (r *GitleaksResult) Recall() float64 {
	if r.Planted == 0 {
		return 0
	}
	return float64(r.Found) / float64(r.Planted)
}

// ScoreGitleaks runs gitleaks (DetectString, one file at a time) over the
// corpus. gitleaks reports lines and columns, not byte offsets, so a planted
// secret counts as found when it is a substring of a finding's match; a
// finding is a false positive when its match contains no planted value and
// its secret lies inside none.
func ScoreGitleaks(c *Corpus) (*GitleaksResult, error) {
	d, err := NewGitleaks()
	if err != nil {
		return nil, err
	}
	res := &GitleaksResult{}
	for _, name := range c.Names {
		findings := d.DetectString(string(c.Files[name]))
		res.Findings += len(findings)
		var labels []Label
		for _, l := range c.Labels {
			if l.File == name {
				labels = append(labels, l)
			}
		}
		for _, l := range labels {
			if l.Kind != Secret {
				continue
			}
			res.Planted++
			hit := false
			for _, f := range findings {
				if strings.Contains(f.Match, l.Value) {
					hit = true
					break
				}
			}
			if hit {
				res.Found++
			} else {
				res.Misses = append(res.Misses, l)
			}
		}
		for _, f := range findings {
			related := false
			for _, l := range labels {
				if strings.Contains(f.Match, l.Value) || (f.Secret != "" && strings.Contains(l.Value, f.Secret)) {
					related = true
					break
				}
			}
			if !related {
				res.FP++
			}
		}
	}
	return res, nil
}
