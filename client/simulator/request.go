package simulator

import (
	"encoding/json"
	"strconv"
)

// Base information fields (OfficialAccountBaseInfoFilter) as bits.
const (
	fCreateTime uint16 = 1 << iota
	fName
	fOwnerAccount
	fLastMsgTime
	fSubscriberNum
	fIntroduction
	fFaceURL
	fOrganization
	fCustomString

	allBase = fCreateTime | fName | fOwnerAccount | fLastMsgTime | fSubscriberNum |
		fIntroduction | fFaceURL | fOrganization | fCustomString
)

// Subscriber information fields (SelfInfoFilter) as bits.
const (
	sSubscribeTime uint8 = 1 << iota
	sCustomString

	allSelf = sSubscribeTime | sCustomString
)

var baseFields = map[string]uint16{
	"CreateTime": fCreateTime, "Name": fName, "Owner_Account": fOwnerAccount,
	"LastMsgTime": fLastMsgTime, "SubscriberNum": fSubscriberNum,
	"Introduction": fIntroduction, "FaceUrl": fFaceURL,
	"Organization": fOrganization, "CustomString": fCustomString,
}

var selfFields = map[string]uint8{"SubscribeTime": sSubscribeTime, "CustomString": sCustomString}

// pageRequest is a decoded, valid request body.
type pageRequest struct {
	user   string
	limit  int
	offset uint64
	base   uint16 // base information fields to return
	self   uint8  // SelfInfo fields to return
}

// badRequest is why a body was refused: the ErrorCode and ErrorInfo.
type badRequest struct {
	code int
	info string
}

// decodeRequest decodes and validates a request body.
//
// Field names are matched exactly (the API is case-sensitive); unknown
// fields are ignored. A body that is not one JSON object answers 20001. A
// missing or empty Subscriber_Account, a field of the wrong JSON type, a
// Limit outside 1..200, a negative Offset or an unknown filter field name
// answers 6017. Absent or null fields take their defaults: Limit 200, Offset
// 0, all fields. An empty filter list counts as not specified (all fields),
// as the service cannot tell an empty list from a missing one.
func decodeRequest(body []byte) (pageRequest, *badRequest) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return pageRequest{}, &badRequest{CodeInvalidPacket, "invalid request packet: the body must be a JSON object"}
	}
	req := pageRequest{limit: maxPage, base: allBase, self: allSelf}

	raw, ok := m["Subscriber_Account"]
	if !ok || isNull(raw) {
		return req, invalid("Subscriber_Account is required")
	}
	if json.Unmarshal(raw, &req.user) != nil {
		return req, invalid("Subscriber_Account must be a string")
	}
	if req.user == "" {
		return req, invalid("Subscriber_Account is empty")
	}

	if raw, ok := m["Limit"]; ok && !isNull(raw) {
		var n int64
		if json.Unmarshal(raw, &n) != nil || n < 1 || n > maxPage {
			return req, invalid("Limit must be an integer from 1 to 200")
		}
		req.limit = int(n)
	}
	if raw, ok := m["Offset"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &req.offset) != nil {
			return req, invalid("Offset must be a non-negative integer")
		}
	}

	raw, ok = m["ResponseFilter"]
	if !ok || isNull(raw) {
		return req, nil
	}
	var filter map[string]json.RawMessage
	if json.Unmarshal(raw, &filter) != nil {
		return req, invalid("ResponseFilter must be an object")
	}
	var bad *badRequest
	if req.base, bad = decodeFilter(filter, "OfficialAccountBaseInfoFilter", baseFields, allBase); bad != nil {
		return req, bad
	}
	if req.self, bad = decodeFilter(filter, "SelfInfoFilter", selfFields, allSelf); bad != nil {
		return req, bad
	}
	return req, nil
}

// decodeFilter reads one filter list into a field mask; absent, null or
// empty means all fields.
func decodeFilter[M uint8 | uint16](filter map[string]json.RawMessage, name string, fields map[string]M, all M) (M, *badRequest) {
	raw, ok := filter[name]
	if !ok || isNull(raw) {
		return all, nil
	}
	var names []string
	if json.Unmarshal(raw, &names) != nil {
		return all, invalid("ResponseFilter." + name + " must be an array of field names")
	}
	if len(names) == 0 {
		return all, nil
	}
	var mask M
	for _, n := range names {
		bit, ok := fields[n]
		if !ok {
			return all, invalid("ResponseFilter." + name + ": unknown field " + strconv.Quote(n))
		}
		mask |= bit
	}
	return mask, nil
}

func invalid(info string) *badRequest {
	return &badRequest{CodeInvalidParameter, "invalid request parameter: " + info}
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }
