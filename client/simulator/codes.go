package simulator

import (
	"encoding/json"
	"net/http"
)

// ErrorCodes the simulator answers. The endpoint-specific ones come from the
// API spec, the common ones from the REST API error-code table.
const (
	CodeOK = 0

	// Endpoint-specific.
	CodeInvalidParameter = 6017   // invalid Limit/Offset/ResponseFilter, missing Subscriber_Account
	CodeInternal         = 10004  // internal server error (injected: Faults.P10004)
	CodeInvalidPacket    = 20001  // body is not a JSON object
	CodeInternalRetry    = 20005  // internal server error (injected: Faults.P20005)
	CodeNoPermission     = 130002 // only through Faults.ForceCode
	CodeUserNotFound     = 130004 // Subscriber_Account does not exist
	CodeBadUserID        = 130007 // only through Faults.ForceCode
	CodeNoService        = 131000 // only through Faults.ForceCode

	// Common.
	CodeBadURL      = 60002 // contenttype is not "json", random is not a uint32, sdkappid is not a number
	CodeNoAccount   = 60004 // identifier is missing
	CodeRateLimited = 60007 // REST API call frequency over the limit (the per-API 200/s limit)
	CodeNotAdmin    = 60010 // identifier is not the app admin
	CodeNoAppID     = 60012 // sdkappid is missing
	CodeAppNotFound = 70020 // sdkappid is not the simulated app

	// UserSig, from tencentyun.VerifyUserSig.
	CodeSigExpired    = 70001 // ErrExpired
	CodeSigInvalid    = 70003 // missing or undecodable usersig
	CodeSigVerify     = 70009 // ErrSigNotMatch: wrong key or tampered sig
	CodeSigIdentifier = 70013 // ErrIdentifierNotMatch: sig made for another identifier
	CodeSigAppID      = 70014 // ErrSdkAppIDNotMatch: sig made for another app (or not JSON inside)
)

// codeInfo is the ErrorInfo of codes answered without a more specific one.
var codeInfo = map[int]string{
	CodeInternal:         "internal server error, please retry",
	CodeInternalRetry:    "internal server error, please retry",
	CodeNoPermission:     "insufficient operation permissions",
	CodeUserNotFound:     "the official account user does not exist or has been terminated",
	CodeBadUserID:        "incorrect official account user ID",
	CodeNoService:        "the app has not enabled the official account service",
	CodeRateLimited:      "REST API call frequency over the limit, please reduce the call rate",
	CodeInvalidParameter: "invalid request parameter",
	CodeInvalidPacket:    "invalid request packet",
}

// envelope is the common answer of every REST API.
type envelope struct {
	ActionStatus string `json:"ActionStatus"`
	ErrorInfo    string `json:"ErrorInfo"`
	ErrorCode    int    `json:"ErrorCode"`
}

// writeFail answers a FAIL envelope with HTTP 200.
func writeFail(w http.ResponseWriter, code int, info string) {
	if info == "" {
		info = codeInfo[code]
	}
	writeAPI(w, envelope{ActionStatus: "FAIL", ErrorInfo: info, ErrorCode: code})
}

func writeAPI(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen with these types
		writeBadGateway(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// writeBadGateway answers an injected network fault the way a gateway does.
func writeBadGateway(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write([]byte("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"))
}
