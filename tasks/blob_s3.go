//go:build !nos3

package tasks

// The s3:// blob store driver (AWS S3 and S3-compatible servers). It adds
// about 11.6 MB to the custos binary; build with -tags nos3 to leave it out.
import _ "gocloud.dev/blob/s3blob"
