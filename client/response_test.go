package client

import (
	"errors"
	"testing"
)

// specSample is the response sample of the API spec, made valid JSON.
const specSample = `{
"ActionStatus": "OK",
"ErrorInfo": "",
"ErrorCode": 0,
"TotalCount": 8,
"OfficialAccountInfoList": [
{
"Name": "test_mill_subscriber_OA",
"Official_Account": "@TOA#_test_mill_subscriber_OA",
"Owner_Account": "107867",
"CreateTime": 1698800000,
"LastMsgTime": 1698894911,
"SubscriberNum": 499800,
"Introduction": "This is test Introduction",
"FaceUrl": "http://this.is.face.url",
"Organization": "Tencent",
"CustomString": "test_custom_string",
"SelfInfo": {
"SubscribeTime": 1700655351,
"CustomString": ""
},
"SomethingNew": {"nested": [1,2,3]}
}
],
"CompleteFlag": 1,
"Next": 0,
"AnotherUnknown": true
}`

func TestDecodeSpecSample(t *testing.T) {
	p, err := decodeResponse([]byte(specSample), 200)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if p.TotalCount != 8 || p.CompleteFlag != 1 || p.Next != 0 || len(p.Accounts) != 1 {
		t.Fatalf("page = %+v", p)
	}
	a := p.Accounts[0]
	checks := []struct {
		name string
		ok   bool
	}{
		{"Official_Account", a.OfficialAccount == "@TOA#_test_mill_subscriber_OA"},
		{"Name", a.Name != nil && *a.Name == "test_mill_subscriber_OA"},
		{"Owner_Account", a.OwnerAccount != nil && *a.OwnerAccount == "107867"},
		{"CreateTime", a.CreateTime != nil && *a.CreateTime == 1698800000},
		{"LastMsgTime", a.LastMsgTime != nil && *a.LastMsgTime == 1698894911},
		{"SubscriberNum", a.SubscriberNum != nil && *a.SubscriberNum == 499800},
		{"Introduction", a.Introduction != nil && *a.Introduction == "This is test Introduction"},
		{"FaceUrl", a.FaceURL != nil && *a.FaceURL == "http://this.is.face.url"},
		{"Organization", a.Organization != nil && *a.Organization == "Tencent"},
		{"CustomString", a.CustomString != nil && *a.CustomString == "test_custom_string"},
		{"SelfInfo.SubscribeTime", a.SelfInfo != nil && a.SelfInfo.SubscribeTime != nil && *a.SelfInfo.SubscribeTime == 1700655351},
		// present but empty: distinguishable from absent
		{"SelfInfo.CustomString", a.SelfInfo != nil && a.SelfInfo.CustomString != nil && *a.SelfInfo.CustomString == ""},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("field %s not decoded as in the sample", c.name)
		}
	}
}

func TestDecodeFilteredFieldsAreNil(t *testing.T) {
	body := `{"ActionStatus":"OK","ErrorCode":0,"TotalCount":1,"CompleteFlag":1,"Next":0,
	"OfficialAccountInfoList":[{"Official_Account":"@TOA#_a","SubscriberNum":0,"SelfInfo":{"SubscribeTime":0}}]}`
	p, err := decodeResponse([]byte(body), 200)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Accounts[0]
	if a.SubscriberNum == nil || *a.SubscriberNum != 0 {
		t.Error("SubscriberNum 0 must be present and zero")
	}
	if a.Name != nil || a.OwnerAccount != nil || a.CreateTime != nil || a.LastMsgTime != nil ||
		a.Introduction != nil || a.FaceURL != nil || a.Organization != nil || a.CustomString != nil {
		t.Errorf("filtered-out fields must be nil: %+v", a)
	}
	if a.SelfInfo == nil || a.SelfInfo.SubscribeTime == nil || a.SelfInfo.CustomString != nil {
		t.Errorf("SelfInfo = %+v", a.SelfInfo)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		status    int
		wantCode  int
		wantClass Class
		wantAPI   bool
	}{
		{"throttled with 200", `{"ActionStatus":"FAIL","ErrorCode":60007,"ErrorInfo":"too fast"}`, 200, 60007, ClassRateLimited, true},
		{"unknown user", `{"ActionStatus":"FAIL","ErrorCode":130004,"ErrorInfo":"no user"}`, 200, 130004, ClassPermanent, true},
		{"FAIL without code", `{"ActionStatus":"FAIL","ErrorCode":0}`, 200, 0, ClassTransient, true},
		{"502 html", `<html>bad gateway</html>`, 502, 0, ClassTransient, true},
		{"500 with code", `{"ActionStatus":"FAIL","ErrorCode":10004}`, 500, 10004, ClassTransient, true},
		{"not json", `<html>`, 200, 0, ClassTransient, false},
		{"empty", ``, 200, 0, ClassTransient, false},
		{"bad complete flag", `{"ActionStatus":"OK","ErrorCode":0,"CompleteFlag":7}`, 200, 0, ClassTransient, false},
		{"negative next", `{"ActionStatus":"OK","ErrorCode":0,"Next":-1}`, 200, 0, ClassTransient, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decodeResponse([]byte(tt.body), tt.status)
			if err == nil || p != nil {
				t.Fatalf("decode = %+v, %v; want error", p, err)
			}
			var apiErr *APIError
			if errors.As(err, &apiErr) != tt.wantAPI {
				t.Fatalf("APIError = %v, want %v (%v)", apiErr != nil, tt.wantAPI, err)
			}
			if tt.wantAPI {
				if apiErr.Code != tt.wantCode || apiErr.HTTPStatus != tt.status || Classify(err) != tt.wantClass {
					t.Errorf("got %+v class %s", apiErr, Classify(err))
				}
			}
		})
	}
}

// FuzzDecodeResponse feeds arbitrary bytes to the decoder: it must never
// panic, and must return exactly one of a page or an error.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(specSample), 200)
	f.Add([]byte(`{"ActionStatus":"FAIL","ErrorCode":60007}`), 200)
	f.Add([]byte(`{"ActionStatus":"OK","ErrorCode":0,"OfficialAccountInfoList":[{"SelfInfo":null}],"Next":18446744073709551615}`), 200)
	f.Add([]byte(`<html>`), 502)
	f.Add([]byte{}, 200)
	f.Add([]byte(`null`), 200)
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		p, err := decodeResponse(body, status)
		if (p == nil) == (err == nil) {
			t.Fatalf("decode returned page %v and error %v", p, err)
		}
		if err != nil {
			_ = err.Error()
			_ = Classify(err)
			return
		}
		if status != 200 || (p.CompleteFlag != 0 && p.CompleteFlag != 1) {
			t.Fatalf("accepted status %d flag %d", status, p.CompleteFlag)
		}
	})
}
