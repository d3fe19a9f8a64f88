package client

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// OfficialAccount is one item of OfficialAccountInfoList. It is the output
// schema's type: the client decodes the API's names (the api tags) into it,
// so a field added to schemas.OfficialAccount is decoded, filtered and
// written without further edits. Pointer fields are nil when the server
// left them out (e.g. filtered), so nil differs from zero.
type OfficialAccount = schemas.OfficialAccount

// SelfInfo is the subscriber's own information about an official account
// (schemas.SelfInfo, decoded by its api tags like OfficialAccount).
type SelfInfo = schemas.SelfInfo

// apiTag is the struct tag naming a field as the API spells it.
const apiTag = "api"

// mirror is a struct type built from a schemas type: the same fields in the
// same order, with the api names as json names, so that encoding/json
// decodes the API's bytes into it exactly as into a hand-written wire type
// (case-insensitive names, unknown fields ignored, null leaves a pointer
// nil). copyTo moves a decoded value into the schemas type.
type mirror struct {
	typ    reflect.Type // the struct decoded from the wire
	nested []*mirror    // per field: the mirror of a *struct field, else nil
	names  []string     // the API names of the optional (pointer, non-struct) fields
}

// newMirror builds the mirror of struct type t. It panics when a field has
// no api tag: a field the decoder would silently never fill.
func newMirror(t reflect.Type) *mirror {
	m := &mirror{nested: make([]*mirror, t.NumField())}
	fields := make([]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := f.Tag.Lookup(apiTag)
		if !ok || name == "" {
			panic(fmt.Sprintf("client: %s.%s has no %s tag", t, f.Name, apiTag))
		}
		typ := f.Type
		switch {
		case typ.Kind() == reflect.Pointer && typ.Elem().Kind() == reflect.Struct:
			m.nested[i] = newMirror(typ.Elem())
			typ = reflect.PointerTo(m.nested[i].typ)
		case typ.Kind() == reflect.Pointer:
			m.names = append(m.names, name)
		}
		fields[i] = reflect.StructField{Name: f.Name, Type: typ, Tag: reflect.StructTag(`json:"` + name + `"`)}
	}
	m.typ = reflect.StructOf(fields)
	return m
}

// copyTo sets dst (of the schemas type) from src (of m.typ).
func (m *mirror) copyTo(dst, src reflect.Value) {
	for i, n := range m.nested {
		sf := src.Field(i)
		if n == nil {
			dst.Field(i).Set(sf)
			continue
		}
		if sf.IsNil() {
			continue
		}
		p := reflect.New(dst.Field(i).Type().Elem())
		n.copyTo(p.Elem(), sf.Elem())
		dst.Field(i).Set(p)
	}
}

// accountMirror decodes OfficialAccountInfoList items.
var accountMirror = newMirror(reflect.TypeFor[OfficialAccount]())

// responseType is wireResponse with OfficialAccountInfoList added as a
// list of accountMirror values, so that one encoding/json pass decodes a
// whole answer.
var responseType = func() reflect.Type {
	head := reflect.TypeFor[wireResponse]()
	fields := make([]reflect.StructField, head.NumField(), head.NumField()+1)
	for i := range fields {
		fields[i] = head.Field(i)
	}
	fields = append(fields, reflect.StructField{Name: "OfficialAccountInfoList",
		Type: reflect.SliceOf(accountMirror.typ), Tag: `json:"OfficialAccountInfoList"`})
	return reflect.StructOf(fields)
}()

// unmarshalResponse decodes body as json.Unmarshal would into wireResponse
// with an OfficialAccountInfoList []OfficialAccount field named by the api
// tags. The list is returned undecoded; accountsOf converts it.
func unmarshalResponse(body []byte) (w wireResponse, list reflect.Value, err error) {
	v := reflect.New(responseType).Elem()
	err = json.Unmarshal(body, v.Addr().Interface())
	head := reflect.ValueOf(&w).Elem()
	for i := range head.NumField() {
		head.Field(i).Set(v.Field(i))
	}
	return w, v.Field(head.NumField()), err
}

// accountsOf converts a decoded OfficialAccountInfoList (nil stays nil).
func accountsOf(list reflect.Value) []OfficialAccount {
	if list.IsNil() {
		return nil
	}
	out := make([]OfficialAccount, list.Len())
	for i := range out {
		accountMirror.copyTo(reflect.ValueOf(&out[i]).Elem(), list.Index(i))
	}
	return out
}
