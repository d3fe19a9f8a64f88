package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/tencentchat-enricher/enricher/processor"
)

// TestFatalNamesFlags: the errors that stop a pipeline name the flags of
// the command, not the packages' Config fields, and still unwrap.
func TestFatalNamesFlags(t *testing.T) {
	write := errors.New("[3] Unknown Topic Or Partition")
	tests := []struct {
		name      string
		err       error
		want      []string
		notWanted []string
	}{
		{"output topic", &processor.TopicError{Topic: "out", Field: "OutputTopic", Err: write},
			[]string{"--output-topic (ENRICHER_OUTPUT_TOPIC)", `"out"`, "Unknown Topic"}, []string{"OutputTopic"}},
		{"dlq topic", &processor.TopicError{Topic: "dlq", Field: "DLQTopic", Err: write},
			[]string{"--dlq-topic (ENRICHER_DLQ_TOPIC)", "--max-record-bytes (ENRICHER_MAX_RECORD_BYTES)"}, []string{"DLQTopic", "MaxRecordBytes"}},
		{"api region", &processor.FatalError{Code: 70020, Setting: "the Region (or BaseURL): the app is not found in this region", Err: errors.New("70020")},
			[]string{"--im-region (ENRICHER_IM_REGION)", "--im-base-url (ENRICHER_IM_BASE_URL)", "ErrorCode 70020"}, []string{"Region (", "BaseURL"}},
		{"api secret", &processor.FatalError{Code: 70003, Setting: "the secret key (SecretKey)", Err: errors.New("70003")},
			[]string{envSecretKey + " or --im-secret-key-file (ENRICHER_IM_SECRET_KEY_FILE)"}, []string{"(SecretKey)"}},
	}
	cmd := runCommand()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := namingFlags(cmd, tt.err)
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not name %q", msg, w)
				}
			}
			for _, w := range tt.notWanted {
				if strings.Contains(msg, w) {
					t.Errorf("%q still names %q", msg, w)
				}
			}
			if !errors.Is(err, tt.err) {
				t.Error("the error does not unwrap to the original")
			}
		})
	}
	other := errors.New("boom")
	if namingFlags(cmd, other) != other {
		t.Error("an error of another kind is changed")
	}
}
