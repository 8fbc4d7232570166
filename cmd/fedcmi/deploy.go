package main

import (
	"context"
	"crypto/tls"
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

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/deploy"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
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

Flags:
  -c file            experiment file (YAML), fields as below
  -listen addr       gRPC address for participants (default :7443)
  -metrics addr      HTTP address of /metrics and /healthz (empty: none)
  -certs dir         take ca.pem, server.pem, server.key from dir (fedcmi certs)
  -ca, -cert, -key   the CA of participants' certificates, the server's
                     certificate and key (override -certs)
  -roster file       accepted participants ("name token [revoked]" lines;
                     fedcmi certs writes roster.txt); default: any holder of a
                     certificate signed by the CA
  -revoke names      refuse these participants (comma-separated)
  -insecure          plain text, no certificates (loudly logged; tokens only)
  -resume            continue the run directory's experiment after its last
                     completed round
  -wait n            participants to wait for before round 1 (default: clients)
  -min-results n     accepted results a round needs to be aggregated (default 1)
  -round-timeout d   how long a round waits for results (default 10m)
  -heartbeat d       participants' heartbeat interval (default 5s); after 3
                     missed ones a participant is not sampled
  -norm-bound x      reject updates farther than x (L2) from the global model
                     (default 0: no bound)
  -max-message n     largest gRPC message in bytes (default 4194304)
  -v                 log debug detail

Every configuration field is also a flag (lists comma-separated):
`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, func(w io.Writer) { config.WriteReference(w, false) })
		file := fs.String("c", "", "experiment file (YAML)")
		listenAddr := fs.String("listen", ":7443", "gRPC address")
		metricsAddr := fs.String("metrics", "", "HTTP address of /metrics and /healthz")
		certs := fs.String("certs", "", "directory written by fedcmi certs")
		ca := fs.String("ca", "", "CA certificate of participants")
		cert := fs.String("cert", "", "server certificate")
		key := fs.String("key", "", "server key")
		rosterFile := fs.String("roster", "", "accepted participants")
		revoke := fs.String("revoke", "", "participants to refuse (comma-separated)")
		insec := fs.Bool("insecure", false, "plain text without certificates")
		resume := fs.Bool("resume", false, "continue after the last completed round")
		wait := fs.Int("wait", 0, "participants to wait for before round 1")
		minResults := fs.Int("min-results", 1, "accepted results a round needs")
		roundTimeout := fs.Duration("round-timeout", 10*time.Minute, "how long a round waits for results")
		heartbeat := fs.Duration("heartbeat", 5*time.Second, "heartbeat interval")
		normBound := fs.Float64("norm-bound", 0, "largest L2 distance of an update from the global model")
		maxMsg := fs.Int("max-message", deploy.DefaultMaxMessageBytes, "largest gRPC message (bytes)")
		verbose := fs.Bool("v", false, "log debug detail")
		overrides := config.RegisterFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		}
		cfg, err := loadConfig(*file, overrides)
		if err != nil {
			return err
		}
		log := newLogger(stderr, *verbose)
		opt := deploy.ServeOptions{
			Insecure: *insec, Resume: *resume, WaitFor: *wait, MinResults: *minResults,
			RoundTimeout: *roundTimeout, HeartbeatInterval: *heartbeat, NormBound: *normBound,
			MaxMessageBytes: *maxMsg, Logger: log, Progress: stdout, AfterRound: afterRound,
		}
		fromDir(certs, ca, deploy.CAFile)
		fromDir(certs, cert, deploy.ServerCert)
		fromDir(certs, key, deploy.ServerKey)
		switch {
		case *insec && (*ca != "" || *cert != ""):
			return &usageError{"-insecure excludes -certs, -ca, -cert and -key"}
		case !*insec && (*ca == "" || *cert == "" || *key == ""):
			return &usageError{"mutual TLS needs -certs dir (or -ca, -cert and -key); plain text needs -insecure"}
		case !*insec:
			if opt.TLS, err = deploy.ServerTLS(*ca, *cert, *key); err != nil {
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
			for _, n := range strings.Split(*revoke, ",") {
				opt.Roster.Revoke(strings.TrimSpace(n))
			}
		}
		if *insec && opt.Roster == nil {
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
		if res != nil {
			fmt.Fprintln(stdout)
			if len(res.Rounds) > 0 {
				last := res.Rounds[len(res.Rounds)-1]
				fmt.Fprintf(stdout, "final accuracy after round %d (test set):\n", last.Round)
				metrics.WriteTable(stdout, res.Schema, []metrics.Round{last})
			}
			fmt.Fprintf(stdout, "run directory: %s\n", res.Dir)
		}
		return err
	}
	return c
}

// fromDir sets *file to dir/name if it is empty and dir is given.
func fromDir(dir *string, file *string, name string) {
	if *file == "" && *dir != "" {
		*file = filepath.Join(*dir, name)
	}
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
               loader data.source names (npz, mfeat, or a media set).

Flags:
  -server addr        the coordinator's host:port (required)
  -participant name   this participant's name (default: client-000i with
                      -shard; with TLS it must be the certificate's name)
  -modalities list    modalities held with -data (default: both)
  -certs dir          take ca.pem, <name>.pem, <name>.key, <name>.token from
                      dir (fedcmi certs)
  -ca, -cert, -key    the coordinator's CA, this participant's certificate
                      and key (override -certs)
  -token t            token (default: <certs>/<name>.token if present)
  -server-name name   name the coordinator's certificate must hold (default:
                      the host of -server)
  -insecure           plain text, no certificates (loudly logged)
  -state file         keep the client's state across restarts (for methods
                      whose clients have one)
  -give-up d          exit after d without reaching the coordinator
                      (default 0: keep trying, it may be restarting)
  -v                  log debug detail

Every configuration field is also a flag (lists comma-separated):
`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, func(w io.Writer) { config.WriteReference(w, false) })
		file := fs.String("c", "", "experiment file (YAML)")
		server := fs.String("server", "", "coordinator host:port")
		shard := fs.Int("shard", -1, "client index of the experiment's partition")
		dataDir := fs.String("data", "", "local data set directory")
		name := fs.String("participant", "", "participant name")
		mods := fs.String("modalities", "", "modalities held with -data")
		certs := fs.String("certs", "", "directory written by fedcmi certs")
		ca := fs.String("ca", "", "CA certificate of the coordinator")
		cert := fs.String("cert", "", "participant certificate")
		key := fs.String("key", "", "participant key")
		token := fs.String("token", "", "participant token")
		serverName := fs.String("server-name", "", "name in the coordinator's certificate")
		insec := fs.Bool("insecure", false, "plain text without certificates")
		stateFile := fs.String("state", "", "client state file")
		giveUp := fs.Duration("give-up", 0, "exit after this long without reaching the coordinator")
		verbose := fs.Bool("v", false, "log debug detail")
		overrides := config.RegisterFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		switch {
		case fs.NArg() > 0:
			return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		case *server == "":
			return &usageError{"-server is required"}
		case (*shard >= 0) == (*dataDir != ""):
			return &usageError{"give either -shard or -data"}
		case *dataDir != "" && *name == "":
			return &usageError{"-data needs -participant name"}
		}
		cfg, err := loadConfig(*file, overrides)
		if err != nil {
			return err
		}
		log := newLogger(stderr, *verbose)
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
		fromDir(certs, ca, deploy.CAFile)
		certFile, keyFile, tokenFile := deploy.ParticipantFiles(*certs, *name)
		if *certs != "" {
			if *cert == "" {
				*cert, *key = certFile, keyFile
			}
			if *token == "" {
				if b, err := os.ReadFile(tokenFile); err == nil {
					*token = strings.TrimSpace(string(b))
				}
			}
		}
		var creds credentials.TransportCredentials
		switch {
		case *insec && (*ca != "" || *cert != ""):
			return &usageError{"-insecure excludes -certs, -ca, -cert and -key"}
		case *insec:
			log.Warn("INSECURE: plain text to the coordinator; neither side is authenticated by certificates")
			creds = insecure.NewCredentials()
		case *ca == "":
			return &usageError{"mutual TLS needs -certs dir (or -ca, -cert and -key); plain text needs -insecure"}
		default:
			var tc *tls.Config
			if tc, err = deploy.ClientTLS(*ca, *cert, *key, *serverName); err != nil {
				return err
			}
			creds = credentials.NewTLS(tc)
		}
		conn, err := grpc.NewClient(*server, grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(deploy.DefaultMaxMessageBytes)),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
		if err != nil {
			return fmt.Errorf("dial %s: %w", *server, err)
		}
		defer conn.Close()
		var client fl.Client = loc.Client
		if wrapClient != nil {
			client = wrapClient(client)
		}
		p := &deploy.Participant{
			Conn: conn, Name: *name, Token: *token, Client: client,
			ModelModalities: loc.Modalities, Holds: loc.Info.Modalities, NumSamples: loc.Info.NumSamples,
			Layout: loc.Layout, StateFile: *stateFile, GiveUpAfter: *giveUp, Logger: log.With("participant", *name),
		}
		return p.Run(ctx)
	}
	return c
}

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
keep ca.key offline. For production, use your organisation's CA instead.

Flags:
  -out dir            output directory (must not hold a CA yet)
  -hosts list         the coordinator's host names or IPs (default localhost,127.0.0.1)
  -participants list  participant names, or a count n for client-0000..client-(n-1)
  -days n             validity in days (default 365)`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, nil)
		out := fs.String("out", "", "output directory")
		hosts := fs.String("hosts", "localhost,127.0.0.1", "coordinator host names or IPs")
		parts := fs.String("participants", "", "participant names or a count")
		days := fs.Int("days", 365, "validity in days")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *out == "" || *parts == "" {
			return &usageError{"-out and -participants are required"}
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
