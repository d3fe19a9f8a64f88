package client

import (
	"fmt"
	"strings"
)

// Region names the data-centre region an SDKAppID was created in. Each region
// has its own REST domain; a call to the wrong region fails with 70016/70020.
type Region string

// Regions with a dedicated REST domain.
const (
	RegionChina         Region = "china"         // console.tim.qq.com
	RegionSingapore     Region = "singapore"     // adminapisgp.im.qcloud.com
	RegionSeoul         Region = "seoul"         // adminapikr.im.qcloud.com
	RegionFrankfurt     Region = "frankfurt"     // adminapiger.im.qcloud.com
	RegionSiliconValley Region = "siliconvalley" // adminapiusa.im.qcloud.com
	RegionJakarta       Region = "jakarta"       // adminapiidn.im.qcloud.com
	RegionTokyo         Region = "tokyo"         // adminapijpn.im.qcloud.com
)

var regionDomains = map[Region]string{
	RegionChina:         "console.tim.qq.com",
	RegionSingapore:     "adminapisgp.im.qcloud.com",
	RegionSeoul:         "adminapikr.im.qcloud.com",
	RegionFrankfurt:     "adminapiger.im.qcloud.com",
	RegionSiliconValley: "adminapiusa.im.qcloud.com",
	RegionJakarta:       "adminapiidn.im.qcloud.com",
	RegionTokyo:         "adminapijpn.im.qcloud.com",
}

// Regions returns every known region, in a stable order.
func Regions() []Region {
	return []Region{RegionChina, RegionSingapore, RegionSeoul, RegionFrankfurt,
		RegionSiliconValley, RegionJakarta, RegionTokyo}
}

// ParseRegion accepts a region name case-insensitively; spaces, hyphens and
// underscores are ignored, so "Silicon Valley" and "silicon-valley" both parse.
func ParseRegion(s string) (Region, error) {
	norm := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '_':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
	r := Region(norm)
	if _, ok := regionDomains[r]; !ok {
		return "", fmt.Errorf("client: unknown region %q (want one of %v)", s, Regions())
	}
	return r, nil
}

// Domain returns the REST domain of the region, or "" when the region is unknown.
func (r Region) Domain() string { return regionDomains[r] }

// BaseURL returns "https://<domain>" for the region, or "" when it is unknown.
func (r Region) BaseURL() string {
	d := r.Domain()
	if d == "" {
		return ""
	}
	return "https://" + d
}

// String returns the region name.
func (r Region) String() string { return string(r) }
