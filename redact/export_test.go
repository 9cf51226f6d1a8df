package redact

// ScanKeywords runs the keyword scan of e over src and returns the number
// of occurrences it reports.
func ScanKeywords(e *Engine, src []byte) int {
	n := 0
	e.kw.scan(src, func(int, int) { n++ })
	return n
}
