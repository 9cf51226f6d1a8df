package pack

// EstimateTokens approximates how many tokens a BPE tokenizer such as
// OpenAI's cl100k or Anthropic's would make of b, without shipping a
// vocabulary. It splits b into runs, roughly as those tokenizers'
// pre-tokenizers do, and charges each run:
//
//   - ASCII letters: split further at lower→upper case changes (camelCase);
//     one token per started 6 letters of each part (common words are one
//     token);
//   - digits: one token per started 3 digits (numbers are split in threes);
//   - spaces and tabs: one token per started 8; a single space before a
//     word or number is free (it is merged into the word's token);
//   - newlines: one token per started 2;
//   - other ASCII (punctuation, symbols, control bytes): one per started 2;
//   - non-ASCII bytes: one token per started 2 bytes (about 1.5 tokens per
//     CJK character, 1 per accented letter).
//
// That is about 4 bytes per token for English prose and a little over 3 for
// source code, erring on the high side, so a budget is rarely overrun. The
// estimate never decreases when bytes are appended to b.
func EstimateTokens(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		c := b[i]
		j := i + 1
		switch {
		case isLetter(c):
			seg := 1
			for ; j < len(b) && isLetter(b[j]); j++ {
				if isLower(b[j-1]) && isUpper(b[j]) {
					n += ceilDiv(seg, 6)
					seg = 0
				}
				seg++
			}
			n += ceilDiv(seg, 6)
		case isDigit(c):
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			n += ceilDiv(j-i, 3)
		case c == ' ' || c == '\t':
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			if !(j-i == 1 && c == ' ' && j < len(b) && (isLetter(b[j]) || isDigit(b[j]))) {
				n += ceilDiv(j-i, 8)
			}
		case c == '\n' || c == '\r':
			for j < len(b) && (b[j] == '\n' || b[j] == '\r') {
				j++
			}
			n += ceilDiv(j-i, 2)
		case c >= 0x80:
			for j < len(b) && b[j] >= 0x80 {
				j++
			}
			n += ceilDiv(j-i, 2)
		default:
			for j < len(b) && isOther(b[j]) {
				j++
			}
			n += ceilDiv(j-i, 2)
		}
		i = j
	}
	return n
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func isUpper(c byte) bool  { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool  { return c >= 'a' && c <= 'z' }
func isLetter(c byte) bool { return isUpper(c) || isLower(c) }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// isOther is the class of the default case: ASCII that is not a letter,
// digit, space, tab or newline.
func isOther(c byte) bool {
	return c < 0x80 && !isLetter(c) && !isDigit(c) && c != ' ' && c != '\t' && c != '\n' && c != '\r'
}
