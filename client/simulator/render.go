package simulator

import (
	"encoding/json"
	"strconv"
	"sync"
)

// The answer is written by hand from fragments encoded once per account:
// encoding/json with reflection was most of the cost of a call.

// Base information fields in the order items carry them (the spec's sample
// order), with their filter bit; Official_Account is always present.
var itemFields = [...]struct {
	name string
	bit  uint16
}{
	{"Name", fName}, {"Official_Account", 0}, {"Owner_Account", fOwnerAccount},
	{"CreateTime", fCreateTime}, {"LastMsgTime", fLastMsgTime},
	{"SubscriberNum", fSubscriberNum}, {"Introduction", fIntroduction},
	{"FaceUrl", fFaceURL}, {"Organization", fOrganization}, {"CustomString", fCustomString},
}

// fragments is an account's `"Field":value` fragments in itemFields order.
type fragments [len(itemFields)][]byte

func accountFragments(a *Account) fragments {
	values := [len(itemFields)]any{
		a.Name, a.OfficialAccount, a.OwnerAccount, a.CreateTime, a.LastMsgTime,
		a.SubscriberNum, a.Introduction, a.FaceURL, a.Organization, a.CustomString,
	}
	var f fragments
	for i, v := range values {
		b := strconv.AppendQuote(nil, itemFields[i].name)
		b = append(b, ':')
		switch v := v.(type) {
		case string:
			b = appendJSONString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		}
		f[i] = b
	}
	return f
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				return append(dst, `""`...)
			}
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// appendPage appends the successful answer for req to dst.
func (s *Simulator) appendPage(dst []byte, req pageRequest, total int) []byte {
	var es []entry
	if req.offset < uint64(total) {
		es = s.entries(req.user, int(req.offset), req.limit)
	}
	complete, next := 1, uint64(0)
	if end := req.offset + uint64(len(es)); len(es) > 0 && end < uint64(total) {
		complete, next = 0, end
	}

	dst = append(dst, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"TotalCount":`...)
	dst = strconv.AppendInt(dst, int64(total), 10)
	dst = append(dst, `,"OfficialAccountInfoList":[`...)
	for i, e := range es {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = s.appendItem(dst, e, req.base, req.self)
	}
	dst = append(dst, `],"CompleteFlag":`...)
	dst = strconv.AppendInt(dst, int64(complete), 10)
	dst = append(dst, `,"Next":`...)
	dst = strconv.AppendUint(dst, next, 10)
	return append(dst, '}')
}

// appendItem appends one OfficialAccountInfoList item with the fields the
// filters ask for.
func (s *Simulator) appendItem(dst []byte, e entry, base uint16, self uint8) []byte {
	frags := &s.data.frags[e.account]
	dst = append(dst, '{')
	first := true
	for i, f := range itemFields {
		if f.bit != 0 && base&f.bit == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, frags[i]...)
	}
	dst = append(dst, `,"SelfInfo":{`...)
	if self&sSubscribeTime != 0 {
		dst = append(dst, `"SubscribeTime":`...)
		dst = strconv.AppendInt(dst, e.subscribeTime, 10)
	}
	if self&sCustomString != 0 {
		if self&sSubscribeTime != 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"CustomString":`...)
		dst = appendJSONString(dst, e.customString)
	}
	return append(dst, "}}"...)
}
