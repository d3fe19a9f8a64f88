package client

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Filter field names accepted by the server (json names per the API spec).
var (
	// BaseInfoFields are the OfficialAccountBaseInfoFilter names.
	BaseInfoFields = []string{"CreateTime", "Name", "Owner_Account", "LastMsgTime", "SubscriberNum",
		"Introduction", "FaceUrl", "Organization", "CustomString"}
	// SelfInfoFields are the SelfInfoFilter names.
	SelfInfoFields = []string{"SubscribeTime", "CustomString"}
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

// OfficialAccount is one item of OfficialAccountInfoList. Pointer fields are
// nil when the server left them out (e.g. filtered), so nil differs from zero.
type OfficialAccount struct {
	OfficialAccount string    `json:"Official_Account"`
	Name            *string   `json:"Name,omitempty"`
	OwnerAccount    *string   `json:"Owner_Account,omitempty"`
	CreateTime      *int64    `json:"CreateTime,omitempty"`
	LastMsgTime     *int64    `json:"LastMsgTime,omitempty"`
	SubscriberNum   *int64    `json:"SubscriberNum,omitempty"`
	Introduction    *string   `json:"Introduction,omitempty"`
	FaceURL         *string   `json:"FaceUrl,omitempty"`
	Organization    *string   `json:"Organization,omitempty"`
	CustomString    *string   `json:"CustomString,omitempty"`
	SelfInfo        *SelfInfo `json:"SelfInfo,omitempty"`
}

// SelfInfo is the subscriber's own information about an official account.
type SelfInfo struct {
	SubscribeTime *int64  `json:"SubscribeTime,omitempty"`
	CustomString  *string `json:"CustomString,omitempty"`
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

// wireResponse is the JSON body received. Unknown fields are ignored.
type wireResponse struct {
	ActionStatus            string            `json:"ActionStatus"`
	ErrorCode               int               `json:"ErrorCode"`
	ErrorInfo               string            `json:"ErrorInfo"`
	TotalCount              int               `json:"TotalCount"`
	OfficialAccountInfoList []OfficialAccount `json:"OfficialAccountInfoList"`
	CompleteFlag            int               `json:"CompleteFlag"`
	Next                    uint64            `json:"Next"`
}

// decodeResponse parses a response body. It returns the page on success,
// an *APIError for an error answer, or a decode error (wrapped by the caller
// into a *TransportError) for bytes that are not a response at all.
func decodeResponse(body []byte, httpStatus int) (*Page, error) {
	var w wireResponse
	err := json.Unmarshal(body, &w)
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
		Accounts:     w.OfficialAccountInfoList,
		TotalCount:   w.TotalCount,
		CompleteFlag: w.CompleteFlag,
		Next:         w.Next,
	}, nil
}
