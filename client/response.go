package client

import (
	"fmt"
	"reflect"
	"slices"
)

// Filter field names accepted by the server (the API's names, from the api
// tags of the optional fields of OfficialAccount and SelfInfo).
var (
	// BaseInfoFields are the OfficialAccountBaseInfoFilter names.
	BaseInfoFields = accountMirror.names
	// SelfInfoFields are the SelfInfoFilter names.
	SelfInfoFields = newMirror(reflect.TypeFor[SelfInfo]()).names
)

// ResponseFilter selects the fields the server returns. A nil filter, or a
// nil/empty list, means all fields of that group.
type ResponseFilter struct {
	OfficialAccountBaseInfoFilter []string `json:"OfficialAccountBaseInfoFilter,omitempty"`
	SelfInfoFilter                []string `json:"SelfInfoFilter,omitempty"`
}

// unknownField returns the first name of f the server does not know, with
// the name of its list and the names that list accepts; name is "" when f
// is nil or every name is known.
func (f *ResponseFilter) unknownField() (list, name string, known []string) {
	if f == nil {
		return "", "", nil
	}
	for _, n := range f.OfficialAccountBaseInfoFilter {
		if !slices.Contains(BaseInfoFields, n) {
			return "OfficialAccountBaseInfoFilter", n, BaseInfoFields
		}
	}
	for _, n := range f.SelfInfoFilter {
		if !slices.Contains(SelfInfoFields, n) {
			return "SelfInfoFilter", n, SelfInfoFields
		}
	}
	return "", "", nil
}

// PageRequest asks for one page of a subscriber's official accounts.
type PageRequest struct {
	SubscriberAccount string
	// Limit is 1..200; 0 = Config.PageLimit.
	Limit int
	// Offset is 0 for the first page, then the previous page's Next.
	Offset uint64
	// Filter overrides Config.Filter when non-nil.
	Filter *ResponseFilter
}

// Page is one successful answer.
type Page struct {
	Accounts     []OfficialAccount
	TotalCount   int    // subscribed accounts in total, independent of Limit
	CompleteFlag int    // 1 = the list is complete
	Next         uint64 // Offset of the next page when CompleteFlag is 0
}

// Subscriptions is a subscriber's complete list.
type Subscriptions struct {
	Accounts   []OfficialAccount
	TotalCount int // TotalCount of the last page
	Pages      int // pages (API calls that succeeded) it took
}

// wireRequest is the JSON body sent to the server.
type wireRequest struct {
	SubscriberAccount string          `json:"Subscriber_Account"`
	Limit             int             `json:"Limit"`
	Offset            uint64          `json:"Offset"`
	ResponseFilter    *ResponseFilter `json:"ResponseFilter,omitempty"`
}

// wireResponse is the JSON body received, but for OfficialAccountInfoList,
// which unmarshalResponse decodes along with it. Unknown fields are ignored.
type wireResponse struct {
	ActionStatus string `json:"ActionStatus"`
	ErrorCode    int    `json:"ErrorCode"`
	ErrorInfo    string `json:"ErrorInfo"`
	TotalCount   int    `json:"TotalCount"`
	CompleteFlag int    `json:"CompleteFlag"`
	Next         uint64 `json:"Next"`
}

// decodeResponse parses a response body. It returns the page on success,
// an *APIError for an error answer, or a decode error (wrapped by the caller
// into a *TransportError) for bytes that are not a response at all.
func decodeResponse(body []byte, httpStatus int) (*Page, error) {
	w, list, err := unmarshalResponse(body)
	if httpStatus != 200 {
		apiErr := &APIError{HTTPStatus: httpStatus}
		if err == nil && w.ErrorCode != 0 {
			apiErr.Code, apiErr.Info = w.ErrorCode, w.ErrorInfo
		}
		return nil, apiErr
	}
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if w.ErrorCode != 0 || w.ActionStatus != "OK" {
		return nil, &APIError{Code: w.ErrorCode, Info: w.ErrorInfo, HTTPStatus: httpStatus}
	}
	if w.CompleteFlag != 0 && w.CompleteFlag != 1 {
		return nil, fmt.Errorf("decode response: CompleteFlag %d is neither 0 nor 1", w.CompleteFlag)
	}
	return &Page{
		Accounts:     accountsOf(list),
		TotalCount:   w.TotalCount,
		CompleteFlag: w.CompleteFlag,
		Next:         w.Next,
	}, nil
}
