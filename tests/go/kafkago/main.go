// segmentio kafka-go (Debian's golang-github-segmentio-kafka-go-dev) against a real broker:
// Conn.CreateTopics and Conn.ReadPartitions (Metadata), a Writer with RequireAll acks over
// 3 partitions, and a Reader with a GroupID that reads every record and commits; a second
// Reader of the group resumes after the committed offsets. Exits 1 on the first mismatch,
// saying what differed. Run by tests/python/test_go_clients.py.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"
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

var (
	bootstrap = flag.String("bootstrap", "127.0.0.1:9092", "broker address")
	topic     = flag.String("topic", "kafkago-topic", "topic to create")
	n         = flag.Int("records", 300, "records per round")
	verbose   = flag.Bool("verbose", false, "kafka-go's own log on stderr")
)

func logger() *log.Logger {
	if *verbose {
		return log.New(os.Stderr, "[kafka-go] ", log.Ltime)
	}
	return nil
}

// write sends records first..first+n-1 with RequireAll acks; the Hash balancer spreads the keys.
func write(first int) {
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:      []string{*bootstrap},
		Topic:        *topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: -1, // RequireAll
		BatchTimeout: 10 * time.Millisecond,
		MaxAttempts:  3,
		Logger:       logger(),
		ErrorLogger:  log.New(os.Stderr, "[kafka-go writer] ", log.Ltime),
	})
	msgs := make([]kafka.Message, 0, *n)
	for i := first; i < first+*n; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("value-%d", i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check(w.WriteMessages(ctx, msgs...), "Writer.WriteMessages")
	check(w.Close(), "Writer.Close")
}

// read runs one Reader of the group until it has read n records, committing each, and
// returns them per partition.
func read(round string) map[int][]kafka.Message {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        []string{*bootstrap},
		GroupID:        *topic + "-group",
		Topic:          *topic,
		MinBytes:       1,
		MaxBytes:       1 << 20,
		MaxWait:        100 * time.Millisecond,
		CommitInterval: 0, // synchronous commits
		Logger:         logger(),
		ErrorLogger:    log.New(os.Stderr, "[kafka-go reader] ", log.Ltime),
	})
	got := map[int][]kafka.Message{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < *n; i++ {
		m, err := r.FetchMessage(ctx)
		check(err, fmt.Sprintf("%s: FetchMessage after %d of %d records", round, i, *n))
		check(r.CommitMessages(ctx, m), round+": CommitMessages")
		got[m.Partition] = append(got[m.Partition], m)
	}
	check(r.Close(), round+": Reader.Close")
	return got
}

// verify: every record of first..first+n-1 read once; per partition, offsets continue from
// where the last round ended, one by one, and the values come in the order written.
func verify(round string, got map[int][]kafka.Message, first int, next map[int]int64) {
	seen := map[int]bool{}
	for p, ms := range got {
		last := -1
		for _, m := range ms {
			if m.Offset != next[p] {
				fail("%s: partition %d read offset %d, want %d (value %s)", round, p, m.Offset, next[p], m.Value)
			}
			next[p]++
			i, err := strconv.Atoi(strings.TrimPrefix(string(m.Value), "value-"))
			if err != nil || i < first || i >= first+*n {
				fail("%s: partition %d offset %d holds %q, not a record of this round", round, p, m.Offset, m.Value)
			}
			if i <= last || seen[i] {
				fail("%s: partition %d offset %d holds value-%d after value-%d", round, p, m.Offset, i, last)
			}
			seen[i], last = true, i
		}
	}
	if len(seen) != *n {
		fail("%s: read %d distinct records, wrote %d", round, len(seen), *n)
	}
}

// partitionsOf asks Metadata v1 for the topic's partitions until all three have a leader
// (an auto-created topic may answer LEADER_NOT_AVAILABLE at first), for at most 10 s.
func partitionsOf(conn *kafka.Conn) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		parts, err := conn.ReadPartitions(*topic)
		ids := []int{}
		for _, p := range parts {
			if p.Topic == *topic && p.Leader.Port != 0 {
				ids = append(ids, p.ID)
			}
		}
		sort.Ints(ids)
		if err == nil && fmt.Sprint(ids) == "[0 1 2]" {
			return
		}
		if time.Now().After(deadline) {
			fail("Conn.ReadPartitions answered %+v, %v; want partitions [0 1 2] with a leader", parts, err)
		}
		time.Sleep(50 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// offsetsAre checks each partition's [first, last) offsets through ListOffsets.
func offsetsAre(next map[int]int64) {
	for p := 0; p < partitions; p++ {
		leader, err := kafka.DialLeader(context.Background(), "tcp", *bootstrap, *topic, p)
		check(err, "DialLeader")
		first, last, err := leader.ReadOffsets()
		check(err, "Conn.ReadOffsets")
		if first != 0 || last != next[p] {
			fail("partition %d offsets [%d, %d), want [0, %d)", p, first, last, next[p])
		}
		leader.Close()
	}
}

func main() {
	onlyServed := flag.Bool("only-served", false,
		"only what the broker serves of kafka-go 0.2.1's protocol: Metadata v1 (auto-creating the topic) and ListOffsets v1")
	flag.Parse()
	conn, err := kafka.Dial("tcp", *bootstrap)
	check(err, "Dial")
	next := map[int]int64{0: 0, 1: 0, 2: 0}
	if *onlyServed {
		partitionsOf(conn)
		offsetsAre(next)
		check(conn.Close(), "Conn.Close")
		fmt.Printf("kafka-go: Metadata v1 auto-created %s with %d partitions; ListOffsets v1 answered empty logs\n", *topic, partitions)
		return
	}

	check(conn.CreateTopics(kafka.TopicConfig{Topic: *topic, NumPartitions: partitions, ReplicationFactor: 1}), "Conn.CreateTopics")
	partitionsOf(conn)
	write(0)
	got := read("first round")
	verify("first round", got, 0, next)
	if len(got) < 2 {
		fail("the Hash balancer used %d partition(s) of %d", len(got), partitions)
	}
	// The second Reader of the group starts after the first one's commits: it reads the
	// second round's records and none of the first's.
	write(*n)
	verify("second round", read("second round"), *n, next)
	offsetsAre(next)
	check(conn.DeleteTopics(*topic), "Conn.DeleteTopics")
	check(conn.Close(), "Conn.Close")
	fmt.Printf("kafka-go: %d records in two group rounds over %d partitions, each read once in order\n", 2**n, len(got))
}
