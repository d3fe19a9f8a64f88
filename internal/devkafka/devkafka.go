// Package devkafka runs an in-process Kafka broker (github.com/twmb/franz-go/pkg/kfake)
// that speaks the real wire protocol over TCP on loopback. It backs the `dev` and
// `broker` commands, the benchmarks and the tests; it is not a production broker.
package devkafka

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures a Broker. The zero value starts one broker on a random
// loopback port, in memory, with auto topic creation and 8 partitions per topic.
type Config struct {
	// Addr is the listen address, for example "127.0.0.1:9092". Default "127.0.0.1:0".
	Addr string
	// DataDir persists the broker's log and group state there; reused on restart.
	// Default: in memory only.
	DataDir string
	// Partitions is the default partition count of topics created
	// automatically or by Topics. Default 8.
	Partitions int
	// Topics are created at start with Partitions partitions each.
	Topics []string
}

// Broker is a running in-process Kafka broker. Close stops it; with a
// DataDir, Restart starts it again where it stopped.
type Broker struct {
	cfg  Config // as started, Addr resolved to the listen address
	addr string

	mu      sync.Mutex
	cluster *kfake.Cluster
	running bool
}

// Start starts a broker. It returns an error when the address is taken or
// the data directory cannot be used.
func Start(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 8
	}
	if cfg.Partitions < 0 {
		return nil, errors.New("devkafka: Partitions must be positive")
	}
	c, err := newCluster(cfg)
	if err != nil {
		return nil, err
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, errors.New("devkafka: broker has no listen address")
	}
	cfg.Addr = addrs[0] // a restart listens where this one does
	return &Broker{cfg: cfg, addr: addrs[0], cluster: c, running: true}, nil
}

func newCluster(cfg Config) (*kfake.Cluster, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("devkafka: bad address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("devkafka: bad port in %q", cfg.Addr)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.GroupMinSessionTimeout(0),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devkafka: start broker on %s: %w", cfg.Addr, err)
	}
	return c, nil
}

// Addr is the broker's bootstrap address (host:port).
func (b *Broker) Addr() string { return b.addr }

// Cluster exposes the kfake cluster for fault injection in tests. After a
// Restart it is a new cluster: control functions installed on the old one
// (ControlKey) are gone.
func (b *Broker) Cluster() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cluster
}

// Close stops the broker and, with a DataDir, flushes its state to disk.
// Clients see their connections close and the address refuse new ones
// until a Restart. Closing a stopped broker does nothing.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		b.cluster.Close()
		b.running = false
	}
}

// Restart stops the broker if it runs and starts it again on the same
// address with the same data directory: topics, records and committed
// offsets (with their metadata) survive, group memberships do not (members
// rejoin). It needs a DataDir: a broker in memory would come back empty.
func (b *Broker) Restart() error {
	if b.cfg.DataDir == "" {
		return errors.New("devkafka: Restart needs a DataDir")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		b.cluster.Close()
		b.running = false
	}
	c, err := newCluster(b.cfg)
	if err != nil {
		return err
	}
	b.cluster, b.running = c, true
	return nil
}
