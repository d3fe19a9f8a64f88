package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/tencentchat-enricher/enricher/client"
)

// A stand-in for the Tencent endpoint: user "107867" subscribes to two
// official accounts, every other user is unknown (130004).
func exampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Subscriber_Account string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Subscriber_Account != "107867" {
			fmt.Fprint(w, `{"ActionStatus":"FAIL","ErrorCode":130004,"ErrorInfo":"user not found"}`)
			return
		}
		fmt.Fprint(w, `{"ActionStatus":"OK","ErrorCode":0,"TotalCount":2,"CompleteFlag":1,"Next":0,
			"OfficialAccountInfoList":[
			 {"Official_Account":"@TOA#_news","Name":"News","SubscriberNum":499800,"SelfInfo":{"SubscribeTime":1700655351}},
			 {"Official_Account":"@TOA#_sport","Name":"Sport"}]}`)
	}))
}

func Example() {
	srv := exampleServer()
	defer srv.Close()

	c, err := client.New(client.Config{
		SDKAppID:  1400000001,
		Admin:     "administrator",
		SecretKey: "dev-only-secret-key",
		BaseURL:   srv.URL, // or Region: client.RegionSingapore
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	subs, err := c.GetAll(context.Background(), "107867")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d accounts in %d page(s)\n", subs.TotalCount, subs.Pages)
	for _, a := range subs.Accounts {
		subscribers := "not returned"
		if a.SubscriberNum != nil {
			subscribers = fmt.Sprint(*a.SubscriberNum)
		}
		fmt.Printf("%s %q subscribers: %s\n", a.OfficialAccount, *a.Name, subscribers)
	}

	// Error answers arrive with HTTP 200; they are errors, never data.
	_, err = c.GetAll(context.Background(), "nobody")
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Code == client.CodeUserNotFound {
		fmt.Println("nobody:", client.Classify(err))
	}
	// Output:
	// 2 accounts in 1 page(s)
	// @TOA#_news "News" subscribers: 499800
	// @TOA#_sport "Sport" subscribers: not returned
	// nobody: permanent
}

func ExampleClassify() {
	for _, code := range []int{client.CodeUserNotFound, client.CodeFrequencyLimit, client.CodeUserSigExpired, client.CodeServiceNotEnabled, client.CodeInternalError} {
		err := &client.APIError{Code: code, HTTPStatus: 200, Attempt: 1}
		fmt.Println(code, client.Classify(err))
	}
	// Output:
	// 130004 permanent
	// 60007 rate_limited
	// 70001 resign
	// 131000 fatal
	// 10004 transient
}
