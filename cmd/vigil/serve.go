package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/stream"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
	"github.com/vigil-fraud/vigil/signals"
)

// errStopped ends the run group on SIGINT/SIGTERM: a clean stop.
var errStopped = errors.New("stopped by signal")

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	fset.SetOutput(stderr)
	configPath := fset.String("config", "", "YAML config file (default: built-in defaults)")
	listen := fset.String("listen", "", "listen address (overrides the config; default 127.0.0.1:8080)")
	rulesDir := fset.String("rules", "", "rules directory, reloaded on SIGHUP or POST /-/reload (overrides the config; default: embedded starter rules)")
	featuresFile := fset.String("features", "", "feature definitions file, reloaded with the rules (overrides the config; default: embedded)")
	keysFile := fset.String("api-keys-file", "", "API keys file (overrides the config)")
	logLevel := fset.String("log-level", "", "debug, info, warn or error (overrides the config)")
	checkOnly := fset.Bool("check-config", false, "validate the configuration, rules and keys, then exit")
	if code := parseFlags(fset, args, stderr); code >= 0 {
		return code
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "vigil:", err)
		return 1
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{{*listen, &cfg.Listen}, {*rulesDir, &cfg.RulesDir}, {*featuresFile, &cfg.Features.File}, {*keysFile, &cfg.APIKeysFile}, {*logLevel, &cfg.Log.Level}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "vigil: invalid configuration:\n%v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	srv, err := newServer(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "vigil:", err)
		return 1
	}
	if *checkOnly {
		if _, err := srv.tlsConfig(); err != nil { // the files' content, not only that they exist
			fmt.Fprintln(stderr, "vigil:", err)
			srv.close()
			return 1
		}
		keys := fmt.Sprintf("%d API keys", srv.keys.Len())
		if srv.devKey != "" {
			keys = "no API key (a development key is generated at start-up)"
		}
		fmt.Fprintf(stdout, "configuration ok: listen %s, ruleset %s (%d rules), %d features, %s, kafka %s, signals %s\n",
			cfg.Listen, srv.engine.Rules().Current().VersionString(), len(srv.engine.Rules().Current().Rules),
			srv.engine.Features().Schema().Len(), keys, onOff(srv.consumer != nil), onOff(srv.signals != nil))
		srv.close()
		return 0
	}
	if err := srv.run(stdout); err != nil {
		log.Error("vigil stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c engine.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// server is the wired `vigil serve` process.
type server struct {
	cfg      config
	feats    *features.Engine
	signals  *signals.Writer  // nil: signals off
	consumer *stream.Consumer // nil: Kafka off
	log      *slog.Logger
	engine   *engine.Engine
	api      *engine.API
	loader   *rules.Loader
	keys     *engine.Keyring
	devKey   string
	rulesSrc string
	audit    io.Closer
}

func newServer(cfg config, log *slog.Logger) (srv *server, err error) {
	s := &server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	fopts, err := cfg.Features.Options(log)
	if err != nil {
		return nil, err
	}
	feats, fdata, err := loadFeatures(cfg.Features.File, fopts, cfg.Signals.Enabled, log)
	if err != nil {
		return nil, err
	}
	s.feats = feats
	var fsys fs.FS = rules.DefaultFS
	dir, display := rules.DefaultDir, "embedded:rules/default"
	s.rulesSrc = "embedded starter rules"
	if cfg.RulesDir != "" {
		fsys, dir, display = os.DirFS(cfg.RulesDir), ".", cfg.RulesDir
		s.rulesSrc = "rules from " + cfg.RulesDir
	}
	srcs, err := rules.ReadDir(fsys, dir, display)
	if err != nil {
		return nil, err
	}
	set, err := rules.Compile(srcs, feats.Schema())
	if err != nil {
		return nil, fmt.Errorf("rules:\n%w", err)
	}
	mgr := rules.NewManager(set)
	metrics := engine.NewMetrics()
	if err := feats.Register(metrics.Registry); err != nil {
		return nil, err
	}
	opts := engine.Options{
		IdempotencyRetention:  time.Duration(cfg.Idempotency.Retention),
		IdempotencyMaxEntries: cfg.Idempotency.MaxEntries,
		Metrics:               metrics,
	}
	if cfg.Signals.Enabled {
		if s.signals, err = signals.NewWriter(cfg.Signals, log, metrics.Registry); err != nil {
			return nil, err
		}
		opts.Sink = s.signals
		s.signals.FeedLabels(feats) // label_rate features
	}
	if s.engine, err = engine.New(feats, mgr, opts); err != nil {
		return nil, err
	}
	s.loader = &rules.Loader{
		FS: fsys, Dir: dir, Display: display, Manager: mgr, Log: log, OnSwap: s.engine.RulesetChanged,
		Features: feats, FeaturesFile: cfg.Features.File, // the embedded definitions ("") never change
		CheckFeatures: func(f *features.File) { labelRateWarnings(f, cfg.Features.File, cfg.Signals.Enabled, log) },
	}
	s.loader.Register(metrics.Registry)
	s.loader.Init(srcs, fdata)
	if cfg.Reload.AuditLog != "" {
		f, err := os.OpenFile(cfg.Reload.AuditLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("rule audit log: %w", err)
		}
		s.loader.Audit, s.audit = f, f
	}
	if s.keys, s.devKey, err = loadKeys(cfg); err != nil {
		return nil, err
	}
	if s.api, err = engine.NewAPI(s.engine, s.keys, log, s.loader); err != nil {
		return nil, err
	}
	if cfg.TLS.ClientCAFile != "" {
		s.api.RequireClientCert()
	}
	if s.signals != nil {
		s.api.Handle("POST /v1/labels", "labels", engine.ScopeLabels, signals.LabelsHandler(s.signals))
	} else {
		s.api.Handle("POST /v1/labels", "labels", engine.ScopeLabels, func(w http.ResponseWriter, r *http.Request) {
			engine.WriteError(w, r, http.StatusNotFound, "signals_off",
				"labels are stored with the decisions' signals in ClickHouse, which are off in this server's configuration (signals.enabled)")
		})
	}
	if cfg.kafkaEnabled() {
		s.consumer, err = stream.New(cfg.Kafka, s.engine, stream.Options{Logger: log, Registerer: metrics.Registry,
			OnReady: s.api.SetReady, Lateness: feats.Lateness()})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// close releases what newServer opened, for a server that will not run
// (run releases them itself).
func (s *server) close() {
	if s.signals != nil {
		s.signals.Close()
	}
	if s.feats != nil {
		s.feats.Close()
	}
	if s.audit != nil {
		s.audit.Close()
	}
}

// loadKeys returns the keyring: the keys file, VIGIL_API_KEY, or a generated
// development key (loopback only).
func loadKeys(cfg config) (*engine.Keyring, string, error) {
	if cfg.APIKeysFile != "" {
		kr, err := engine.LoadKeyring(cfg.APIKeysFile)
		return kr, "", err
	}
	if k := os.Getenv("VIGIL_API_KEY"); k != "" {
		if len(k) < 16 {
			return nil, "", errors.New("VIGIL_API_KEY is shorter than 16 characters")
		}
		return engine.NewKeyringFromSecret("env", k), "", nil
	}
	if !cfg.LoopbackListen() {
		return nil, "", fmt.Errorf("refusing to listen on %s without an API key: set --api-keys-file or VIGIL_API_KEY", cfg.Listen)
	}
	secret, _, err := engine.GenerateSecret()
	if err != nil {
		return nil, "", err
	}
	return engine.NewKeyringFromSecret("dev", secret), secret, nil
}

func (s *server) tlsConfig() (*tls.Config, error) {
	t := s.cfg.TLS
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil { // its errors start with "tls: " already
		return nil, fmt.Errorf("%w (cert_file %s, key_file %s)", err, t.CertFile, t.KeyFile)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no certificates in %s", t.ClientCAFile)
		}
		// A presented certificate is verified in the handshake; the API
		// refuses requests without one except on the health checks, so
		// that probes and load balancers need no certificate.
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// run serves until SIGINT/SIGTERM, reloading rules on SIGHUP.
func (s *server) run(stdout io.Writer) error {
	tlsConf, err := s.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: another process (another vigil?) listens on %s; choose another address with --listen HOST:PORT", err, s.cfg.Listen)
		}
		return err
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	defer s.close()
	httpSrv := &http.Server{Handler: s.api.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	var g run.Group
	g.Add(func() error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		s.api.SetReady(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.ShutdownTimeout))
		defer cancel()
		if err := httpSrv.Shutdown(ctx); err != nil {
			s.log.Warn("shutdown did not finish in time", "err", err)
		}
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	stop := make(chan struct{})
	g.Add(func() error {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					s.loader.Reload(context.Background(), "sighup")
					continue
				}
				s.log.Info("shutting down", "signal", sig.String())
				return errStopped
			case <-stop:
				return nil
			}
		}
	}, func(error) {
		signal.Stop(sigs)
		close(stop)
	})
	if s.consumer != nil {
		// Not ready until the consumer has rebuilt the windows of its
		// partitions and caught up; it reports readiness itself.
		s.api.SetReady(false)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g.Add(func() error {
			defer close(done)
			return s.consumer.Run(ctx)
		}, func(error) {
			cancel()
			<-done // offsets committed, decisions produced: their records are queued
		})
	}
	if s.signals != nil {
		// Added after the HTTP server and the consumer: its interrupt runs
		// once they have stopped, so the last decisions' records are
		// drained (or spilled) too.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return s.signals.Run(ctx) }, func(error) { cancel() })
	}
	if s.signals != nil && s.cfg.kafkaEnabled() && s.cfg.Kafka.Topics.Labels != "" {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return s.consumeLabels(ctx) }, func(error) { cancel() })
	}
	if every := time.Duration(s.cfg.Reload.PollInterval); every > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return s.loader.Poll(ctx, every) }, func(error) { cancel() })
	}
	s.banner(stdout, tlsConf != nil, ln.Addr().String())
	if err := g.Run(); err != nil && !errors.Is(err, errStopped) {
		return err
	}
	s.log.Info("vigil stopped")
	return nil
}

// consumeLabels stores the labels topic's messages in ClickHouse until ctx
// is done. Kafka errors are retried, never fatal: scoring goes on.
func (s *server) consumeLabels(ctx context.Context) error {
	k := s.cfg.Kafka
	dialer, err := k.Dialer()
	if err != nil {
		return err
	}
	if k.Topics.Create {
		transport, err := k.Transport()
		if err != nil {
			return err
		}
		t := stream.Topic{Name: k.Topics.Labels, Partitions: k.Topics.Partitions, ReplicationFactor: k.Topics.ReplicationFactor}
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			err := stream.CreateTopic(ctx, k.Connection, transport, t)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("labels topic: cannot create it yet, retrying", "topic", t.Name, "err", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			}
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Dialer: dialer, GroupID: k.Group + ".labels",
		Topic: k.Topics.Labels, StartOffset: kafka.FirstOffset, MaxWait: time.Second,
		WatchPartitionChanges: true, // partitions added later are read too
		Logger: kafka.LoggerFunc(func(msg string, args ...any) {
			if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("labels topic: "+fmt.Sprintf(msg, args...), "topic", k.Topics.Labels)
			}
		}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.log.Warn("labels topic: "+fmt.Sprintf(msg, args...), "topic", k.Topics.Labels)
		})})
	defer r.Close()
	s.log.Info("labels topic: consuming", "topic", k.Topics.Labels, "group", k.Group+".labels")
	return s.signals.ConsumeLabels(ctx, r)
}

func (s *server) banner(w io.Writer, tls bool, addr string) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	set := s.engine.Rules().Current()
	s.log.Info("vigil listening", "addr", addr, "tls", tls, "mtls", s.cfg.TLS.ClientCAFile != "", "ruleset", set.VersionString(), "rules", len(set.Rules), "features", s.engine.Features().Schema().Len())
	fmt.Fprintf(w, "\nvigil is listening on %s://%s with %s (ruleset %s, %d rules).\n", scheme, addr, s.rulesSrc, set.VersionString(), len(set.Rules))
	key := "$VIGIL_API_KEY" // the shell expands it: double quotes below
	switch {
	case s.devKey != "":
		key = s.devKey
		fmt.Fprintf(w, "No API key configured: generated a development key for this run (full access):\n  %s\n", s.devKey)
	case s.cfg.APIKeysFile != "":
		key = "$VIGIL_KEY"
		fmt.Fprintf(w, "Set VIGIL_KEY to the secret of a key of %s with the score scope.\n", s.cfg.APIKeysFile)
	}
	fmt.Fprintf(w, "Score a transaction:\n%s", scoreCurl(scheme+"://"+addr, key, tls, s.cfg.TLS.ClientCAFile != ""))
	fmt.Fprintf(w, "Add ?explain=true to see the features the rules read. Stop with Ctrl-C.\n\n")
}

// scoreCurl is the banner's example: a curl command scoring a transaction
// at base, with key in double quotes (a $VARIABLE expands) and, over TLS,
// placeholders for the CA and the client certificate.
func scoreCurl(base, key string, tls, mtls bool) string {
	opts := ""
	if tls {
		opts = " --cacert CA.pem" // the server certificate's CA, unless the system trusts it
		if mtls {
			opts += " --cert CLIENT.pem --key CLIENT.key"
		}
	}
	return fmt.Sprintf("  curl -s%s -H \"Authorization: Bearer %s\" %s/v1/score \\\n    -d '%s'\n", opts, key, base, exampleTransaction)
}

const exampleTransaction = `{"id":"tx_1001","amount":4599,"currency":"USD","card":{"token":"tok_4f9a","country":"US"},"account":{"id":"acct_42"},"merchant":{"id":"m_1","mcc":"5411","country":"US"}}`

// loadFeatures builds the features engine of vigil serve from a
// definitions file, or the embedded default when path is empty, and
// returns the file's content too. label_rate features are fed by the
// labels that reach the signals writer (labels true).
func loadFeatures(path string, opts features.Options, labels bool, log *slog.Logger) (*features.Engine, []byte, error) {
	name, data, err := readFeatureData(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := features.Parse(name, data)
	if err != nil {
		return nil, nil, err
	}
	labelRateWarnings(f, path, labels, log)
	opts.Labels = labels // a features reload may add label_rate features
	e, err := features.New(f, opts)
	return e, data, err
}

// labelRateWarnings says when label_rate features of f cannot be fed:
// without signals they are always missing, and it says so rather than let
// a rule that reads one silently never fire.
func labelRateWarnings(f *features.File, path string, labels bool, log *slog.Logger) {
	var rates, unfed []string
	for _, d := range f.Features {
		if d.Kind != features.KindLabelRate {
			continue
		}
		rates = append(rates, d.Name)
		for _, e := range d.Entity {
			switch {
			case !slices.Contains(signals.FedFields, e):
				unfed = append(unfed, d.Name+" ("+e+")")
			case e == "device.fingerprint": // stored as sent; one vigil derived is not
				unfed = append(unfed, d.Name+" (device.fingerprint, when vigil derives it)")
			}
		}
	}
	switch {
	case len(rates) > 0 && !labels:
		level := slog.LevelWarn
		if path == "" {
			level = slog.LevelInfo // the embedded default: expected, not a mistake
		}
		log.Log(context.Background(), level, "label_rate features are always missing: labels reach the features engine through signals (POST /v1/labels), which are off",
			"file", f.Name, "definitions", rates)
	case len(rates) > 0 && len(unfed) > 0:
		log.Warn("label_rate features keyed on a field the signals table does not store are not fed", "definitions", unfed)
	}
}
