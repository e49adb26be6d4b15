package status

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/taskotron-go/taskotron/bus"
	"github.com/taskotron-go/taskotron/config"
	"github.com/taskotron-go/taskotron/reporter"
)

// Unseen says what a look over AMQP cannot show.
const Unseen = "jobs delivered to a worker and not acked yet are not visible over AMQP (RabbitMQ's management UI or `rabbitmqctl list_queues name messages_unacknowledged` show them)"

// QueueView is one look at everything waiting, from the configuration
// alone: the broker's queues (amqp.url) or the on-disk queue, and the
// reporter's spool.
type QueueView struct {
	// Broker is amqp.url without its password; empty for the on-disk queue.
	Broker string           `json:"broker,omitempty"`
	Queues []bus.QueueDepth `json:"queues,omitempty"`
	Unseen string           `json:"unseen,omitempty"`

	DiskQueue *bus.DiskQueueState `json:"disk_queue,omitempty"`
	// DeadLetters counts the file messages set aside (dead-letters.jsonl).
	DeadLetterFile *DeadLetterFile `json:"dead_letter_file,omitempty"`

	SpoolDir string           `json:"spool_dir"`
	Spool    reporter.Pending `json:"spool"`
}

// DeadLetterFile is the on-disk dead-letter file and how many messages it holds.
type DeadLetterFile struct {
	Path  string `json:"path"`
	Count int    `json:"count"`
}

// InspectQueues looks at the queues of cfg; arches are the job queues'
// (none: trigger.arches and noarch). It fails only when the broker cannot
// be reached or a folder cannot be read.
func InspectQueues(cfg config.Config, arches ...string) (QueueView, error) {
	var v QueueView
	if cfg.AMQP.URL != "" {
		v.Broker = bus.RedactURL(cfg.AMQP.URL)
		qs, err := bus.InspectBroker(cfg.AMQP.URL, bus.BrokerQueues(cfg, arches...))
		if err != nil {
			return v, err
		}
		v.Queues, v.Unseen = qs, Unseen
	} else {
		dq, err := bus.InspectDiskQueue(cfg.QueueDir())
		if err != nil {
			return v, err
		}
		v.DiskQueue = &dq
		path := cfg.DeadLetterFile()
		n, err := bus.CountDeadLetters(path)
		if err != nil {
			return v, err
		}
		v.DeadLetterFile = &DeadLetterFile{Path: path, Count: n}
	}
	v.SpoolDir = cfg.Resolved().Reporter.Spool
	p, err := reporter.SpoolPending(v.SpoolDir)
	if err != nil {
		return v, fmt.Errorf("reporter spool %s: %w", v.SpoolDir, err)
	}
	v.Spool = p
	return v, nil
}

// Print writes the view as tables for a person.
func (v QueueView) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if v.Broker != "" {
		fmt.Fprintf(w, "RabbitMQ %s\n", v.Broker)
		fmt.Fprintln(tw, "QUEUE\tKIND\tREADY\tCONSUMERS\t")
		for _, q := range v.Queues {
			if !q.Exists {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\tdoes not exist yet\n", q.Name, q.Kind)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", q.Name, q.Kind, q.Ready, q.Consumers)
		}
		tw.Flush()
		fmt.Fprintf(w, "(ready: waiting for a consumer; %s)\n", v.Unseen)
	}
	if d := v.DiskQueue; d != nil {
		if !d.Exists {
			fmt.Fprintf(w, "On-disk job queue %s: does not exist yet (no job was ever queued)\n", d.Dir)
		} else {
			fmt.Fprintf(w, "On-disk job queue %s: %d waiting, %d taken and not acked (running, or back after a crash)", d.Dir, d.Waiting, d.Taken)
			if d.Unreadable > 0 {
				fmt.Fprintf(w, ", %d unreadable set aside", d.Unreadable)
			}
			fmt.Fprintln(w)
			if len(d.ByArchTask) > 0 {
				fmt.Fprintln(tw, "ARCH/TASK\tJOBS\t")
				for _, k := range bus.SortedKeys(d.ByArchTask) {
					fmt.Fprintf(tw, "%s\t%d\t\n", k, d.ByArchTask[k])
				}
				tw.Flush()
			}
		}
	}
	if f := v.DeadLetterFile; f != nil {
		fmt.Fprintf(w, "Dead letters %s: %d\n", f.Path, f.Count)
	}
	s := v.Spool
	fmt.Fprintf(w, "Reporter spool %s: %d posts waiting for ResultsDB, %d refused; %d Bodhi comments waiting, %d refused\n",
		v.SpoolDir, s.Posts, s.RejectedPosts, s.Comments, s.RejectedComments)
}
