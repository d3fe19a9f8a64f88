package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"

	"github.com/tencentchat-enricher/enricher/client/simulator"
)

func ExampleNewServer() {
	data, err := simulator.NewDataset(
		[]simulator.Account{{OfficialAccount: "@TOA#_news", Name: "News"}, {OfficialAccount: "@TOA#_sport", Name: "Sport"}},
		map[string][]simulator.Subscription{"107867": {
			{OfficialAccount: "@TOA#_news", SubscribeTime: 1700655351},
			{OfficialAccount: "@TOA#_sport", SubscribeTime: 1700655352},
		}},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := simulator.NewServer(simulator.Config{
		SDKAppID: 1400000001, Admin: "administrator", SecretKey: "dev-only-secret-key", Dataset: data,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	sig, _ := tencentyun.GenUserSig(1400000001, "dev-only-secret-key", "administrator", 86400)
	q := url.Values{"sdkappid": {"1400000001"}, "identifier": {"administrator"}, "usersig": {sig},
		"random": {strconv.Itoa(99999999)}, "contenttype": {"json"}}
	body := `{"Subscriber_Account":"107867","Limit":1,"ResponseFilter":{"OfficialAccountBaseInfoFilter":["Name"],"SelfInfoFilter":["SubscribeTime"]}}`
	resp, err := http.Post(srv.URL()+simulator.Path+"?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var answer json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode, string(answer))
	fmt.Println("calls:", srv.Stats().Total)
	// Output:
	// 200 {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"TotalCount":2,"OfficialAccountInfoList":[{"Name":"News","Official_Account":"@TOA#_news","SelfInfo":{"SubscribeTime":1700655351}}],"CompleteFlag":0,"Next":1}
	// calls: 1
}
