package main

import "github.com/custos-dev/custos/bench/scorecard/corpus"

// scoreCustos runs the engine (secrets on, no known values, default PII
// detectors) over every corpus file.
func scoreCustos(c *corpus.Corpus) ([]*corpus.Result, error) {
	e, err := corpus.NewCustos(true, true)
	if err != nil {
		return nil, err
	}
	return corpus.Score(c, corpus.CustosSpans(e)), nil
}
