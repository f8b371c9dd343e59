// Package api is the wire format of ember's daemon API (`ember daemon`):
// the JSON bodies of its requests and answers, its error codes, and the
// OpenAPI 3 document that describes every route (openapi.json, served at
// /v1/openapi.json). The server is package daemon; a Go client is
// api/client.
//
// The API is versioned under /v1/: within v1 fields are only added, never
// renamed or removed, and error codes keep their meaning.
package api
