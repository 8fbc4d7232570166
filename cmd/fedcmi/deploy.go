package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/fedcmi/fedcmi/deploy"
	"github.com/fedcmi/fedcmi/fl"
)

// Test hooks, set only by the tests of this package: wrapClient wraps a
// participant's client, afterRound runs after each of serve's rounds.
var (
	wrapClient func(fl.Client) fl.Client
	afterRound func(round int)
)

func cmdServe() *Command {
	c := &Command{
		Name:      "serve",
		UsageLine: "serve [-c exp.yaml] [-listen addr] [-certs dir | -ca f -cert f -key f | -insecure] [flags] [-<field> value ...]",
		Short:     "coordinate a federation of participants over the network",
		Long: `Serve runs the experiment as the coordinator of a federation: participants
(fedcmi join) dial it over gRPC with mutual TLS, register, and train when
sampled; the coordinator aggregates with the same strategy as simulate,
evaluates every global model on its test set, and writes the same run
directory, plus coordinator.safetensors (its state after every round).
With the same config and seed, and participants joined with -shard 0..N-1,
the metrics equal those of fedcmi simulate.

Mutual TLS needs -certs dir (or -ca, -cert and -key); plain text needs
-insecure.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		x := newExperimentFlags(c, stderr)
		fs := x.fs
		listenAddr := fs.String("listen", ":7443", "gRPC `addr`ess participants dial")
		metricsAddr := fs.String("metrics", "", "HTTP `addr`ess of /metrics and /healthz (empty: none)")
		tf := addCertFlags(fs, "`file` of the CA of participants' certificates (overrides -certs)",
			"`file` of the coordinator's certificate (overrides -certs)", "`file` of the coordinator's key (overrides -certs)",
			"take ca.pem, server.pem and server.key from `dir` (written by fedcmi certs)")
		rosterFile := fs.String("roster", "", "`file` of the accepted participants, \"name token [revoked] [max_samples=N]\" lines (fedcmi certs writes roster.txt); default: any holder of a certificate signed by the CA")
		revoke := fs.String("revoke", "", "refuse these participants (comma-separated `names`, each on the -roster)")
		resume := fs.Bool("resume", false, "continue the run directory's experiment after its last completed round")
		wait := fs.Int("wait", 0, "participants to wait for before round 1 (0: clients)")
		minResults := fs.Int("min_results", 1, "accepted results a round needs to be aggregated")
		roundTimeout := fs.Duration("round_timeout", 10*time.Minute, "how long a round waits for results")
		heartbeat := fs.Duration("heartbeat", 5*time.Second, "participants' heartbeat interval; after 3 missed ones a participant is not sampled")
		normBound := fs.Float64("norm_bound", 0, "reject updates farther than this L2 distance from the global model (0: no bound)")
		maxSamples := fs.Int("max_samples", 0, "refuse participants declaring more than this many training samples, the weight of their results (0: no bound; a roster line's max_samples=N bounds one participant)")
		maxShare := fs.Float64("max_weight_share", deploy.DefaultMaxWeightShare, "largest share of a round's aggregation weight one result takes, in (0, 1] (default: no participant outweighs all others together; 1: plain sample weights); applies to rounds of 3 or more results")
		stuckAfter := fs.Duration("stuck_after", 0, "/healthz answers 503 when a round (or a wait between rounds) makes no progress this long (0: twice -round_timeout)")
		maxMsg := fs.Int("max_message", deploy.DefaultMaxMessageBytes, "largest gRPC message in bytes (participants need the same -max_message when it is raised)")
		secAgg := fs.Bool("secagg", false, "secure aggregation: participants mask their updates, the coordinator learns only each modality group's weighted sum (refuses settings that need single updates; -max_weight_share then defaults to 1)")
		secAggThreshold := fs.Int("secagg_threshold", 0, "with -secagg: participants whose shares unmask a round; a round fails once fewer are left (0: ceil(2n/3) of the round's n, at least 2)")
		secAggTimeout := fs.Duration("secagg_timeout", time.Minute, "with -secagg: how long each key step and the unmasking step wait for participants")
		alias(fs, stderr, "min_results", "min-results")
		alias(fs, stderr, "round_timeout", "round-timeout")
		alias(fs, stderr, "norm_bound", "norm-bound")
		alias(fs, stderr, "max_message", "max-message")
		alias(fs, stderr, "max_samples", "max-samples")
		alias(fs, stderr, "max_weight_share", "max-weight-share")
		alias(fs, stderr, "stuck_after", "stuck-after")
		if err := x.parse(args); err != nil {
			return err
		}
		if *maxSamples < 0 {
			return &usageError{fmt.Sprintf("-max_samples %d: want a positive number, or 0 for no bound", *maxSamples)}
		}
		if err := deploy.CheckMaxMessage(*maxMsg); err != nil {
			return &usageError{err.Error()}
		}
		if !(*maxShare > 0 && *maxShare <= 1) {
			return &usageError{fmt.Sprintf("-max_weight_share %v: want a share in (0, 1]", *maxShare)}
		}
		shareSet := false
		var flagErr error
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "max_weight_share":
				shareSet = true
			case "secagg_threshold", "secagg_timeout":
				if !*secAgg {
					flagErr = &usageError{fmt.Sprintf("-%s needs -secagg", f.Name)}
				}
			}
		})
		if flagErr != nil {
			return flagErr
		}
		if *stuckAfter < 0 {
			return &usageError{fmt.Sprintf("-stuck_after %v: want a positive duration, or 0 for twice -round_timeout", *stuckAfter)}
		}
		cfg, err := x.config()
		if err != nil {
			return err
		}
		log := x.logger()
		if *secAgg && !shareSet {
			*maxShare = 0 // no weight cap: the weights are masked
		}
		opt := deploy.ServeOptions{
			Insecure: *tf.insecure, Resume: *resume, WaitFor: *wait, MinResults: *minResults,
			RoundTimeout: *roundTimeout, HeartbeatInterval: *heartbeat, NormBound: *normBound, StuckAfter: *stuckAfter,
			MaxSamples: *maxSamples, MaxWeightShare: *maxShare,
			MaxMessageBytes: *maxMsg, Logger: log, Progress: stdout, AfterRound: afterRound,
		}
		if *secAgg {
			opt.SecAgg = &deploy.SecAggConfig{Threshold: *secAggThreshold, PhaseTimeout: *secAggTimeout}
		}
		tf.fromDir(deploy.ServerCert, deploy.ServerKey)
		if err := tf.check(true); err != nil {
			return err
		}
		if !*tf.insecure {
			if opt.TLS, err = deploy.ServerTLS(*tf.ca, *tf.cert, *tf.key); err != nil {
				return err
			}
		}
		if *rosterFile != "" {
			if opt.Roster, err = deploy.LoadRoster(*rosterFile); err != nil {
				return err
			}
		}
		if *revoke != "" {
			if opt.Roster == nil {
				return &usageError{"-revoke needs -roster"}
			}
			names := strings.Split(*revoke, ",")
			for i, n := range names {
				names[i] = strings.TrimSpace(n)
			}
			if err := opt.Roster.Revoke(names...); err != nil {
				return &usageError{fmt.Sprintf("-revoke: %v", err)}
			}
		}
		if *tf.insecure && opt.Roster == nil {
			log.Warn("INSECURE and no roster: anyone who reaches the port can join under any name")
		}
		if opt.Listener, err = net.Listen("tcp", *listenAddr); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		if *metricsAddr != "" {
			if opt.HTTPListener, err = net.Listen("tcp", *metricsAddr); err != nil {
				return fmt.Errorf("metrics listen: %w", err)
			}
		}
		res, err := deploy.Serve(ctx, cfg, opt)
		writeResult(stdout, res, &cfg)
		return err
	}
	return c
}

// certFlags are the certificate flags serve and join share.
type certFlags struct {
	dir, ca, cert, key *string
	insecure           *bool
}

// addCertFlags adds -certs, -ca, -cert, -key and -insecure to fs, with the
// given meanings of -ca, -cert, -key and -certs.
func addCertFlags(fs *flag.FlagSet, caUsage, certUsage, keyUsage, dirUsage string) *certFlags {
	return &certFlags{
		dir:      fs.String("certs", "", dirUsage),
		ca:       fs.String("ca", "", caUsage),
		cert:     fs.String("cert", "", certUsage),
		key:      fs.String("key", "", keyUsage),
		insecure: fs.Bool("insecure", false, "plain text, no certificates (loudly logged)"),
	}
}

// fromDir fills -ca, -cert and -key, where not given, from the -certs
// directory: the CA file and the named certificate and key.
func (t *certFlags) fromDir(certFile, keyFile string) {
	fill := func(file *string, name string) {
		if *file == "" && *t.dir != "" {
			*file = filepath.Join(*t.dir, name)
		}
	}
	fill(t.ca, deploy.CAFile)
	fill(t.cert, certFile)
	fill(t.key, keyFile)
}

// check returns a usage error if -insecure comes with certificates, or if
// TLS is chosen without a CA or, when ownPair is set (the coordinator's
// own certificate is mandatory), without a certificate and key.
func (t *certFlags) check(ownPair bool) error {
	switch {
	case *t.insecure && (*t.ca != "" || *t.cert != ""):
		return &usageError{"-insecure excludes -certs, -ca, -cert and -key"}
	case !*t.insecure && (*t.ca == "" || ownPair && (*t.cert == "" || *t.key == "")):
		return &usageError{"mutual TLS needs -certs dir (or -ca, -cert and -key); plain text needs -insecure"}
	}
	return nil
}

func cmdJoin() *Command {
	c := &Command{
		Name:      "join",
		UsageLine: "join -server host:port [-c exp.yaml] (-shard i | -data dir) [-participant name] [-certs dir | -ca f -cert f -key f | -insecure] [flags]",
		Short:     "take part in a federation: train on local data when asked",
		Long: `Join connects to a coordinator (fedcmi serve), registers, and trains on
its local data whenever the coordinator samples it, until the federation
is over. It survives coordinator restarts (reconnecting with backoff).
The model and training settings come from the experiment file, which must
match the coordinator's.

Local data is either
  -shard i     client i of the experiment's own partition (as simulate
               splits the data; name client-000i), so that a federation of
               all shards gives the simulation's numbers, or
  -data dir    all training samples of the data set in dir, read by the
               loader data.source names (npz, mfeat, or a media set).`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		x := newExperimentFlags(c, stderr)
		fs := x.fs
		server := fs.String("server", "", "the coordinator's `host:port` (required)")
		shard := fs.Int("shard", -1, "train as client `i` of the experiment's own partition (named client-000i)")
		dataDir := fs.String("data", "", "train on all training samples of the data set in `dir`")
		name := fs.String("participant", "", "this participant's `name` (default: client-000i with -shard; with TLS the certificate's name)")
		mods := fs.String("modalities", "", "modalities held with -data (comma-separated `list`; default: both)")
		tf := addCertFlags(fs, "`file` of the coordinator's CA (overrides -certs)", "`file` of this participant's certificate (overrides -certs)",
			"`file` of this participant's key (overrides -certs)",
			"take ca.pem, <name>.pem, <name>.key and <name>.token from `dir` (written by fedcmi certs)")
		token := fs.String("token", "", "participant token (default: <certs>/<name>.token if present)")
		serverName := fs.String("server_name", "", "`name` the coordinator's certificate must hold (default: the host of -server)")
		stateFile := fs.String("state", "", "keep the client's state across restarts in `file` (for methods whose clients have one)")
		giveUp := fs.Duration("give_up", 0, "exit after this long without an answer from the coordinator (0: keep trying, it may be restarting)")
		maxMsg := fs.Int("max_message", deploy.DefaultMaxMessageBytes, "largest gRPC message in bytes the coordinator may send (as its serve -max_message)")
		secAgg := fs.Bool("secagg", false, "refuse to train outside secure aggregation (serve -secagg), so this participant's update never reaches the coordinator in the clear (without it: follow the coordinator)")
		alias(fs, stderr, "server_name", "server-name")
		alias(fs, stderr, "give_up", "give-up")
		alias(fs, stderr, "max_message", "max-message")
		if err := x.parse(args); err != nil {
			return err
		}
		switch {
		case *server == "":
			return &usageError{"-server is required"}
		case (*shard >= 0) == (*dataDir != ""):
			return &usageError{"give either -shard or -data"}
		case *dataDir != "" && *name == "":
			return &usageError{"-data needs -participant name"}
		}
		if err := deploy.CheckMaxMessage(*maxMsg); err != nil {
			return &usageError{err.Error()}
		}
		cfg, err := x.config()
		if err != nil {
			return err
		}
		log := x.logger()
		var loc *deploy.Local
		if *shard >= 0 {
			loc, err = deploy.ShardLocal(ctx, &cfg, *shard, log)
		} else {
			var holds []string
			if *mods != "" {
				holds = strings.Split(*mods, ",")
			}
			loc, err = deploy.DataLocal(ctx, &cfg, *dataDir, *name, holds, log)
		}
		if err != nil {
			return err
		}
		if *name == "" {
			*name = loc.Info.ID
		}
		certName, keyName, tokenName := deploy.ParticipantFiles("", *name)
		tf.fromDir(certName, keyName)
		if *tf.dir != "" {
			if *token == "" {
				if b, err := os.ReadFile(filepath.Join(*tf.dir, tokenName)); err == nil {
					*token = strings.TrimSpace(string(b))
				}
			}
		}
		if err := tf.check(false); err != nil {
			return err
		}
		var creds credentials.TransportCredentials
		if *tf.insecure {
			log.Warn("INSECURE: plain text to the coordinator; neither side is authenticated by certificates")
			creds = insecure.NewCredentials()
		} else {
			tc, err := deploy.ClientTLS(*tf.ca, *tf.cert, *tf.key, *serverName)
			if err != nil {
				return err
			}
			creds = credentials.NewTLS(tc)
		}
		conn, err := grpc.NewClient(*server, grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(*maxMsg)),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
		if err != nil {
			return fmt.Errorf("dial %s: %w", *server, err)
		}
		defer conn.Close()
		p := loc.Participant(conn)
		p.Name, p.Token, p.StateFile, p.GiveUpAfter = *name, *token, *stateFile, *giveUp
		p.Logger, p.Plaintext, p.Address, p.RequireSecAgg = log.With("participant", *name), *tf.insecure, *server, *secAgg
		if wrapClient != nil {
			p.Client = wrapClient(p.Client)
		}
		return p.Run(ctx)
	}
	return c
}

// maxCertDays bounds certs -days (100 years), far below the overflow of a
// time.Duration.
const maxCertDays = 36500

func cmdCerts() *Command {
	c := &Command{
		Name:      "certs",
		UsageLine: "certs -out dir -hosts h1,h2 -participants p1,p2,...",
		Short:     "create a development CA and certificates for a federation",
		Long: `Certs creates a development certificate authority in -out and signs with it
a coordinator certificate valid for -hosts (DNS names or IP addresses the
participants dial) and one client certificate per participant, whose
common name is the participant's name. It also writes a random token per
participant (<name>.token) and roster.txt, the list fedcmi serve -roster
accepts. Give each participant ca.pem and its own .pem, .key and .token;
keep ca.key offline. For production, use your organisation's CA instead.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c)
		out := fs.String("out", "", "output `dir`ectory (must not hold a CA yet)")
		hosts := fs.String("hosts", "localhost,127.0.0.1", "the coordinator's host names or IPs (comma-separated `list`)")
		parts := fs.String("participants", "", "participant names (comma-separated `list`), or a count n for client-0000..client-(n-1)")
		days := fs.Int("days", 365, "validity of the certificates in days, 1 to 36500")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *out == "" || *parts == "" {
			return &usageError{"-out and -participants are required"}
		}
		if *days < 1 || *days > maxCertDays {
			return &usageError{fmt.Sprintf("-days %d: the certificates must be valid for 1 to %d days", *days, maxCertDays)}
		}
		var names []string
		var n int
		if _, err := fmt.Sscanf(*parts, "%d", &n); err == nil && fmt.Sprint(n) == *parts {
			for i := range n {
				names = append(names, fmt.Sprintf("client-%04d", i))
			}
		} else {
			names = strings.Split(*parts, ",")
		}
		if err := deploy.WriteDevCerts(*out, strings.Split(*hosts, ","), names, time.Duration(*days)*24*time.Hour); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote a CA, a server certificate for %s and %d participant certificates to %s\n", *hosts, len(names), *out)
		return nil
	}
	return c
}
