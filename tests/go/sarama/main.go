// Sarama (Debian's golang-github-shopify-sarama-dev) against a real broker: ClusterAdmin
// creates a topic, an idempotent acks=all SyncProducer writes N records, a ConsumerGroup
// reads them once each in order per partition and commits, the admin reads the committed
// offsets back, describes and deletes the topic. Exits 1 on the first mismatch, saying what
// differed. Run by tests/python/test_go_clients.py.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const partitions = 3

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "MISMATCH: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "sarama-test"
	// Kafka 2.1's protocol: Produce v3+, Fetch v4+, CreateTopics v2, the versions a
	// Kafka 4.0 broker (and this one) still serves.
	c.Version = sarama.V2_1_0_0
	c.Net.MaxOpenRequests = 1
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Producer.Retry.Max = 5
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	// A retention time makes Sarama commit with OffsetCommit v2 (v1 is gone in Kafka 4.0).
	c.Consumer.Offsets.Retention = 24 * time.Hour
	c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	return c
}

type record struct {
	value  string
	offset int64
}

// handler keeps what each partition's claim delivered and marks every message consumed.
type handler struct {
	mu    sync.Mutex
	got   map[int32][]record
	total int
	want  int
	done  chan struct{}
	once  sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.got[m.Partition] = append(h.got[m.Partition], record{string(m.Value), m.Offset})
		h.total++
		if h.total >= h.want {
			h.once.Do(func() { close(h.done) })
		}
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker address")
	topic := flag.String("topic", "sarama-topic", "topic to create")
	n := flag.Int("records", 300, "records to produce")
	verbose := flag.Bool("verbose", false, "Sarama's own log on stderr")
	flag.Parse()
	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime)
	}
	addrs := []string{*bootstrap}
	group := *topic + "-group"

	admin, err := sarama.NewClusterAdmin(addrs, config())
	check(err, "NewClusterAdmin")
	check(admin.CreateTopic(*topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false), "CreateTopic")
	meta, err := admin.DescribeTopics([]string{*topic})
	check(err, "DescribeTopics")
	if len(meta) != 1 || meta[0].Err != sarama.ErrNoError || len(meta[0].Partitions) != partitions {
		fail("DescribeTopics after CreateTopic: %+v", meta)
	}

	// Produce: each partition's offsets must be 0, 1, 2, ... in the order sent.
	producer, err := sarama.NewSyncProducer(addrs, config())
	check(err, "NewSyncProducer")
	sent := map[int32][]record{}
	for i := 0; i < *n; i++ {
		v := fmt.Sprintf("value-%d", i)
		p, off, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: *topic, Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i)), Value: sarama.StringEncoder(v),
		})
		check(err, fmt.Sprintf("SendMessage %d", i))
		if want := int64(len(sent[p])); off != want {
			fail("record %d got offset %d on partition %d, want %d", i, off, p, want)
		}
		sent[p] = append(sent[p], record{v, off})
	}
	check(producer.Close(), "SyncProducer.Close")
	if len(sent) < 2 {
		fail("the hash partitioner used %d partition(s) of %d", len(sent), partitions)
	}

	// Consume with a group, marking every message; the group commits as it goes and on close.
	cg, err := sarama.NewConsumerGroup(addrs, group, config())
	check(err, "NewConsumerGroup")
	go func() {
		for err := range cg.Errors() {
			fmt.Fprintf(os.Stderr, "consumer group error: %v\n", err)
		}
	}()
	h := &handler{got: map[int32][]record{}, want: *n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{*topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case err := <-consumed:
		fail("Consume ended before every record was read: %v", err)
	case <-time.After(60 * time.Second):
		h.mu.Lock()
		fail("consumer group read %d of %d records in 60 s", h.total, *n)
	}
	cancel()
	if err := <-consumed; err != nil {
		fail("Consume: %v", err)
	}
	check(cg.Close(), "ConsumerGroup.Close")

	h.mu.Lock()
	for p, want := range sent {
		got := h.got[p]
		if len(got) != len(want) {
			fail("partition %d: read %d records, produced %d", p, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				fail("partition %d position %d: read %+v, produced %+v", p, i, got[i], want[i])
			}
		}
	}
	if h.total != *n {
		fail("read %d records in all, produced %d", h.total, *n)
	}
	h.mu.Unlock()

	// The committed offsets are each partition's end: every record read once.
	offs, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{*topic: {0, 1, 2}})
	check(err, "ListConsumerGroupOffsets")
	for p := int32(0); p < partitions; p++ {
		b := offs.GetBlock(*topic, p)
		if b == nil || b.Err != sarama.ErrNoError {
			fail("committed offset of partition %d: %+v", p, b)
		}
		want := int64(len(sent[p]))
		if want == 0 {
			want = -1 // nothing consumed, nothing committed
		}
		if b.Offset != want {
			fail("committed offset of partition %d is %d, want %d", p, b.Offset, want)
		}
	}
	groups, err := admin.DescribeConsumerGroups([]string{group})
	check(err, "DescribeConsumerGroups")
	if len(groups) != 1 || groups[0].State != "Empty" {
		fail("group after Close: %+v", groups[0])
	}

	check(admin.DeleteTopic(*topic), "DeleteTopic")
	// Not ListTopics or DescribeConfig: Sarama 1.22 sends them as DescribeConfigs v0, which
	// Kafka 4.0 (KIP-896) and this broker no longer serve.
	meta, err = admin.DescribeTopics([]string{*topic})
	check(err, "DescribeTopics after DeleteTopic")
	if len(meta) != 1 || meta[0].Err != sarama.ErrUnknownTopicOrPartition {
		fail("DescribeTopics after DeleteTopic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", meta[0])
	}
	check(admin.Close(), "ClusterAdmin.Close")
	fmt.Printf("sarama: %d records over %d partitions produced, consumed once in order, committed; topic deleted\n", *n, len(sent))
}
