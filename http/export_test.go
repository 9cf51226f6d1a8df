package http

import "net/http"

// HTTPServer exposes the wrapped net/http.Server to the tests.
func (s *Server) HTTPServer() *http.Server { return s.srv }
