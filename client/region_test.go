package client

import (
	"strings"
	"testing"
)

func TestParseRegion(t *testing.T) {
	tests := []struct {
		in      string
		want    Region
		domain  string
		wantErr bool
	}{
		{"china", RegionChina, "console.tim.qq.com", false},
		{"Singapore", RegionSingapore, "adminapisgp.im.qcloud.com", false},
		{"seoul", RegionSeoul, "adminapikr.im.qcloud.com", false},
		{"FRANKFURT", RegionFrankfurt, "adminapiger.im.qcloud.com", false},
		{"Silicon Valley", RegionSiliconValley, "adminapiusa.im.qcloud.com", false},
		{"silicon-valley", RegionSiliconValley, "adminapiusa.im.qcloud.com", false},
		{"jakarta", RegionJakarta, "adminapiidn.im.qcloud.com", false},
		{" tokyo ", RegionTokyo, "adminapijpn.im.qcloud.com", false},
		{"mars", "", "", true},
		{"", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRegion(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want || got.Domain() != tt.domain {
				t.Errorf("ParseRegion(%q) = %q (%q), want %q (%q)", tt.in, got, got.Domain(), tt.want, tt.domain)
			}
			if !tt.wantErr && got.BaseURL() != "https://"+tt.domain {
				t.Errorf("BaseURL = %q", got.BaseURL())
			}
		})
	}
}

func TestRegionsAllHaveDomains(t *testing.T) {
	for _, r := range Regions() {
		if !strings.HasSuffix(r.Domain(), ".qq.com") && !strings.HasSuffix(r.Domain(), ".qcloud.com") {
			t.Errorf("region %s has domain %q", r, r.Domain())
		}
		back, err := ParseRegion(r.String())
		if err != nil || back != r {
			t.Errorf("ParseRegion(%s) = %s, %v", r, back, err)
		}
	}
	if Region("nowhere").BaseURL() != "" {
		t.Error("unknown region has a base URL")
	}
}
