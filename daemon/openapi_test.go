package daemon

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"ember/api"
	"ember/machine"
)

// openAPIDoc is api/openapi.json, decoded.
type openAPIDoc struct {
	Paths      map[string]map[string]openAPIOp `json:"paths"`
	Components struct {
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

// openAPIOp is one operation: its answers by status.
type openAPIOp struct {
	Responses map[string]struct {
		Content map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

func loadOpenAPI(t testing.TB) *openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	return &doc
}

// TestRoutesMatchOpenAPI: every route the daemon serves is in the OpenAPI
// document with its method, and every operation the document lists is
// served, so the document cannot drift from the server.
func TestRoutesMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	served := map[string]bool{}
	for _, r := range New(Config{}).routes() {
		method, path, _ := strings.Cut(r.pattern, " ")
		served[strings.ToLower(method)+" "+path] = true
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("route %s is not in api/openapi.json", r.pattern)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("api/openapi.json lists %s %s, which the daemon does not serve", strings.ToUpper(method), path)
			}
		}
	}
	for name, s := range doc.Components.Schemas {
		if err := checkRefs(doc, s); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
}

// checkRefs reports a $ref to a schema the document lacks.
func checkRefs(doc *openAPIDoc, v any) error {
	switch v := v.(type) {
	case map[string]any:
		if r, ok := v["$ref"].(string); ok {
			if _, ok := doc.Components.Schemas[strings.TrimPrefix(r, "#/components/schemas/")]; !ok {
				return fmt.Errorf("dangling $ref %s", r)
			}
		}
		for _, e := range v {
			if err := checkRefs(doc, e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := checkRefs(doc, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkResponse checks an answer against the document: the operation
// lists its status, and a JSON body fits the schema given for it.
func checkResponse(t testing.TB, doc *openAPIDoc, pattern string, status int, body []byte) {
	t.Helper()
	method, path, _ := strings.Cut(pattern, " ")
	op, ok := doc.Paths[path][strings.ToLower(method)]
	if !ok {
		t.Errorf("%s: not in the document", pattern)
		return
	}
	r, ok := op.Responses[fmt.Sprint(status)]
	if !ok && status != http.StatusForbidden && status != http.StatusMethodNotAllowed {
		t.Errorf("%s answered %d, which the document does not list (%s)", pattern, status, body)
		return
	}
	c, ok := r.Content["application/json"]
	if !ok || status == http.StatusForbidden || status == http.StatusMethodNotAllowed {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s %d: body is not JSON: %v\n%s", pattern, status, err, body)
		return
	}
	if err := validate(doc, c.Schema, v, "$"); err != nil {
		t.Errorf("%s %d: %v\n%s", pattern, status, err, body)
	}
}

// validate checks v against the subset of JSON Schema the document uses:
// $ref, type, properties, required, additionalProperties, items, enum,
// minimum, maximum, maxLength.
func validate(doc *openAPIDoc, s map[string]any, v any, at string) error {
	if r, ok := s["$ref"].(string); ok {
		rs, _ := doc.Components.Schemas[strings.TrimPrefix(r, "#/components/schemas/")].(map[string]any)
		return validate(doc, rs, v, at)
	}
	if types, ok := s["type"]; ok && !typeMatches(types, v) {
		return fmt.Errorf("%s: %v is not of type %v", at, v, types)
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || e == v
		}
		if !found {
			return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
		}
	}
	if n, ok := v.(float64); ok {
		if min, ok := s["minimum"].(float64); ok && n < min {
			return fmt.Errorf("%s: %v < minimum %v", at, n, min)
		}
		if max, ok := s["maximum"].(float64); ok && n > max {
			return fmt.Errorf("%s: %v > maximum %v", at, n, max)
		}
	}
	if str, ok := v.(string); ok {
		if max, ok := s["maxLength"].(float64); ok && float64(len(str)) > max {
			return fmt.Errorf("%s: longer than %v", at, max)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		return validateObject(doc, s, v, at)
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range v {
				if err := validate(doc, items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// validateObject checks an object's required, declared and extra fields.
func validateObject(doc *openAPIDoc, s map[string]any, v map[string]any, at string) error {
	props, _ := s["properties"].(map[string]any)
	for _, r := range asStrings(s["required"]) {
		if _, ok := v[r]; !ok {
			return fmt.Errorf("%s: required field %q missing", at, r)
		}
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ps, ok := props[k].(map[string]any); ok {
			if err := validate(doc, ps, v[k], at+"."+k); err != nil {
				return err
			}
			continue
		}
		switch extra := s["additionalProperties"].(type) {
		case bool:
			if !extra {
				return fmt.Errorf("%s: field %q is not in the schema", at, k)
			}
		case map[string]any:
			if err := validate(doc, extra, v[k], at+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

func asStrings(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// typeMatches reports whether v is of the schema type (or one of them).
func typeMatches(types any, v any) bool {
	for _, t := range append(asStrings(types), fmt.Sprint(types)) {
		switch t {
		case "object":
			if _, ok := v.(map[string]any); ok {
				return true
			}
		case "array":
			if _, ok := v.([]any); ok {
				return true
			}
		case "string":
			if _, ok := v.(string); ok {
				return true
			}
		case "boolean":
			if _, ok := v.(bool); ok {
				return true
			}
		case "number":
			if _, ok := v.(float64); ok {
				return true
			}
		case "integer":
			if n, ok := v.(float64); ok && n == math.Trunc(n) {
				return true
			}
		case "null":
			if v == nil {
				return true
			}
		}
	}
	return false
}

// TestMachineConfigMatchesOpenAPI: every field of machine.Config (and of
// the structures inside it) is a property of the OpenAPI schema, and every
// property is a field. The schema says additionalProperties: false, so a
// client that validates against it would refuse a field the document
// forgot.
func TestMachineConfigMatchesOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	compareSchema(t, doc, "MachineConfig", reflect.TypeFor[machine.Config](), doc.Components.Schemas["MachineConfig"])
}

// compareSchema compares the JSON fields of the struct type typ with the
// properties of schema (after $ref and array items), recursing into fields
// that are structs themselves.
func compareSchema(t *testing.T, doc *openAPIDoc, at string, typ reflect.Type, schema any) {
	t.Helper()
	s := resolveSchema(doc, schema)
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return
	}
	props, _ := s["properties"].(map[string]any)
	fields := map[string]bool{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = true
		p, ok := props[name]
		if !ok {
			t.Errorf("%s.%s (%s.%s) is not in api/openapi.json", at, name, typ.Name(), f.Name)
			continue
		}
		compareSchema(t, doc, at+"."+name, f.Type, p)
	}
	for name := range props {
		if !fields[name] {
			t.Errorf("api/openapi.json lists %s.%s, which %s has no field for", at, name, typ)
		}
	}
}

// resolveSchema follows $ref and an array's items to the object schema.
func resolveSchema(doc *openAPIDoc, schema any) map[string]any {
	s, _ := schema.(map[string]any)
	for s != nil {
		if ref, ok := s["$ref"].(string); ok {
			s, _ = doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			continue
		}
		if items, ok := s["items"].(map[string]any); ok {
			s = items
			continue
		}
		return s
	}
	return nil
}
