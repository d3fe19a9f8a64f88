package processor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/processor"
)

// The run command: a processor over the consumer group, stopped by a
// signal; an app-fatal API answer ends it with a *processor.FatalError.
func Example() {
	api, err := client.New(client.Config{SDKAppID: 1400000001, Admin: "administrator", SecretKey: os.Getenv("TENCENT_SECRET_KEY"), Region: client.RegionSingapore})
	if err != nil {
		log.Fatal(err)
	}
	defer api.Close()
	p, err := processor.New(processor.Config{
		Brokers:    []string{"localhost:9092"},
		InputTopic: "user-events", OutputTopic: "user-events-enriched", DLQTopic: "user-events-dlq",
		Group: "enricher",
	}, api)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := p.Run(ctx); err != nil {
		var fe *processor.FatalError
		if errors.As(err, &fe) {
			log.Fatalf("fix %s", fe.Setting)
		}
		log.Fatal(err)
	}
}

// fakeAPI answers every user with one official account.
type fakeAPI struct{}

func (fakeAPI) GetAll(ctx context.Context, user string) (*client.Subscriptions, error) {
	return &client.Subscriptions{Accounts: []client.OfficialAccount{{OfficialAccount: "@TOA#_news"}}, TotalCount: 1, Pages: 1}, nil
}

// A replay of a time range: a bounded Source with its own checkpoint group,
// run through the same pipeline as live processing.
func ExampleReplay() {
	broker, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{"user-events", "user-events-replay", "user-events-replay-dlq"}})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	w := &kafka.Writer{Addr: kafka.TCP(broker.Addr()), Topic: "user-events", BatchTimeout: time.Millisecond}
	for i, user := range []string{"user-1", "user-2", "user-3", "user-4"} {
		// One event per day: 1, 2, 3 and 4 October.
		msg := kafka.Message{Value: []byte(`{"user_id":"` + user + `"}`), Time: day.Add(time.Duration(i) * 24 * time.Hour)}
		if err := w.WriteMessages(context.Background(), msg); err != nil {
			log.Fatal(err)
		}
	}
	w.Close()

	rng := processor.ReplayRange{From: day.Add(24 * time.Hour), To: day.Add(72 * time.Hour)} // 2 and 3 October
	cfg := processor.Config{
		Brokers:    []string{broker.Addr()},
		InputTopic: "user-events", OutputTopic: "user-events-replay", DLQTopic: "user-events-replay-dlq",
		Group:  processor.ReplayGroup("user-events", "user-events-replay", rng),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	replay, err := processor.NewReplay(cfg, rng)
	if err != nil {
		log.Fatal(err)
	}
	p, err := processor.NewPipeline(cfg, fakeAPI{})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Run(context.Background(), replay); err != nil {
		log.Fatal(err)
	}
	pr := replay.Progress()
	fmt.Printf("complete %v: offsets %d of %d, %d enriched\n", pr.Complete, pr.Done, pr.Total, p.Stats().Out)
	// Output:
	// complete true: offsets 2 of 2, 2 enriched
}
