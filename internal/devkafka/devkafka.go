// Package devkafka runs an in-process Kafka broker (github.com/twmb/franz-go/pkg/kfake)
// that speaks the real wire protocol over TCP on loopback. It backs the `dev` and
// `broker` commands, the benchmarks and the tests; it is not a production broker.
package devkafka

import (
	"errors"
	"fmt"
	"net"
	"strconv"

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

// Broker is a running in-process Kafka broker. Close stops it.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
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
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, errors.New("devkafka: broker has no listen address")
	}
	return &Broker{cluster: c, addr: addrs[0]}, nil
}

// Addr is the broker's bootstrap address (host:port).
func (b *Broker) Addr() string { return b.addr }

// Cluster exposes the kfake cluster for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker and, with a DataDir, flushes its state to disk.
func (b *Broker) Close() { b.cluster.Close() }
