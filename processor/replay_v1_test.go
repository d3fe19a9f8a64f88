package processor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The replay checkpoint of version 1, as earlier releases wrote it:
// "enricher-replay/1 start=S end=E", followed by " stopped" in the final
// checkpoint of a run that stopped cleanly. decodeMetadata still reads it;
// the tests write it with formatCheckpoint and compare with parseCheckpoint.
const (
	checkpointVersion = "enricher-replay/1"
	checkpointStopped = "stopped"
)

// errCheckpoint marks commit metadata that is not a replay checkpoint.
var errCheckpoint = errors.New("no replay checkpoint in the commit metadata")

func formatCheckpoint(start, end int64, stopped bool) string {
	s := fmt.Sprintf("%s start=%d end=%d", checkpointVersion, start, end)
	if stopped {
		s += " " + checkpointStopped
	}
	return s
}

func parseCheckpoint(s string) (start, end int64, stopped bool, err error) {
	f := strings.Fields(s)
	if len(f) == 4 && f[3] == checkpointStopped {
		stopped, f = true, f[:3]
	}
	if len(f) != 3 || f[0] != checkpointVersion {
		return 0, 0, false, errCheckpoint
	}
	vals := [2]int64{}
	for i, name := range []string{"start=", "end="} {
		v, ok := strings.CutPrefix(f[i+1], name)
		if !ok {
			return 0, 0, false, errCheckpoint
		}
		if vals[i], err = strconv.ParseInt(v, 10, 64); err != nil || vals[i] < 0 {
			return 0, 0, false, errCheckpoint
		}
	}
	if vals[1] < vals[0] {
		return 0, 0, false, errCheckpoint
	}
	return vals[0], vals[1], stopped, nil
}
