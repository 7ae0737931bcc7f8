package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/rules"
)

// OpenAPI is the OpenAPI 3 description of the HTTP API, served at
// /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Reloader reloads the rules on POST /-/reload. changed reports whether
// this reload made a new set live (false: the files were those of the
// running set).
type Reloader interface {
	ReloadReport(ctx context.Context, trigger string) (rules.Report, error)
}

// API serves the HTTP API.
type API struct {
	engine   *Engine
	keys     *Keyring
	log      *slog.Logger
	reloader Reloader
	ready    atomic.Bool
	now      func() time.Time
	extra    []route
	// clientCert: every endpoint but the health checks needs a verified
	// client certificate (mutual TLS with tls.VerifyClientCertIfGiven).
	clientCert bool
}

type route struct {
	pattern, name string
	scope         Scope
	h             http.HandlerFunc
}

// Handle adds an endpoint (pattern as in http.ServeMux, e.g. "POST
// /v1/labels") served with the API's authentication for scope, request ids,
// metrics (under name) and logging. Call it before Handler.
func (a *API) Handle(pattern, name string, scope Scope, h http.HandlerFunc) {
	a.extra = append(a.extra, route{pattern, name, scope, h})
}

// WriteError writes the API's JSON error body, with the fields in error
// if any.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, msg string, fields ...event.FieldError) {
	writeError(w, r, status, code, msg, fields)
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// NewAPI builds the API over an engine. reloader may be nil.
func NewAPI(e *Engine, keys *Keyring, log *slog.Logger, reloader Reloader) (*API, error) {
	if e == nil || keys == nil || keys.Len() == 0 {
		return nil, errors.New("api: an engine and at least one API key are required")
	}
	a := &API{engine: e, keys: keys, log: log, reloader: reloader, now: time.Now}
	a.ready.Store(true)
	return a, nil
}

// SetReady sets what /readyz answers.
func (a *API) SetReady(ok bool) { a.ready.Store(ok) }

// RequireClientCert makes every endpoint but /healthz and /readyz refuse
// a request whose connection presented no verified client certificate.
// The TLS listener verifies the certificates that are presented
// (tls.VerifyClientCertIfGiven) and lets probes connect without one. Call
// it before Handler.
func (a *API) RequireClientCert() { a.clientCert = true }

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path -> its methods, for 405s
	handle := func(pattern, name string, scope Scope, h http.HandlerFunc) {
		mux.Handle(pattern, a.wrap(name, scope, h))
		if method, path, ok := strings.Cut(pattern, " "); ok {
			allowed[path] = append(allowed[path], method)
		}
	}
	handle("GET /healthz", "healthz", "", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("GET /readyz", "readyz", "", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	metrics := promhttp.HandlerFor(a.engine.metrics.Registry, promhttp.HandlerOpts{})
	handle("GET /metrics", "metrics", ScopeMetrics, metrics.ServeHTTP)
	handle("GET /v1/openapi.json", "openapi", anyScope, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI)
	})
	handle("POST /v1/score", "score", ScopeScore, a.score)
	handle("GET /v1/rules", "rules", ScopeRulesRead, a.rules)
	handle("POST /-/reload", "reload", ScopeAdmin, a.reload)
	for _, rt := range a.extra {
		handle(rt.pattern, rt.name, rt.scope, rt.h)
	}
	mux.Handle("/", a.wrap("unknown", "", func(w http.ResponseWriter, r *http.Request) {
		if methods, ok := allowed[r.URL.Path]; ok {
			allow := strings.Join(methods, ", ")
			w.Header().Set("Allow", allow)
			writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", r.URL.Path+" takes "+allow, nil)
			return
		}
		writeError(w, r, http.StatusNotFound, "not_found", "no such endpoint: "+loggedMethod(r)+" "+loggedPath(r), nil)
	}))
	// http.ServeMux redirects a path that is not clean to its cleaned form,
	// repeating the path (a card number maybe) in the Location header and
	// the body, before any handler of its runs: such paths are refused
	// here instead, as an unknown endpoint, never echoed.
	unclean := a.wrap("unknown", "", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "not_found",
			"no such endpoint: paths are served as they are written, without redirects: start with /, no empty, . or .. segment", nil)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanPath(r.URL.EscapedPath()) {
			unclean.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath reports whether p, a request's escaped path, is one that
// http.ServeMux serves without redirecting to its cleaned form: it starts
// with /, and path.Clean changes it at most by its trailing slash.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	return c == p || c != "/" && c+"/" == p
}

// anyScope marks endpoints open to every valid key.
const anyScope Scope = "*"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	keyIDKey
)

// KeyID returns the id of the API key that authenticated the request of
// ctx, or "" when none did (health endpoints).
func KeyID(ctx context.Context) string {
	id, _ := ctx.Value(keyIDKey).(string)
	return id
}

// wrap adds the request id, authentication and scope check, metrics and the
// debug request log around a handler.
func (a *API) wrap(name string, scope Scope, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		keyID := ""
		switch {
		case scope == "":
			h(sw, r)
		case a.clientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0):
			writeError(sw, r, http.StatusUnauthorized, "client_certificate_required",
				"this endpoint needs a client certificate signed by the server's client CA", nil)
		default:
			key, ok := a.keys.Authenticate(r)
			switch {
			case !ok:
				sw.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
				writeError(sw, r, http.StatusUnauthorized, "unauthorized", "missing or invalid API key", nil)
			case scope != anyScope && !key.Allows(scope):
				keyID = key.ID
				writeError(sw, r, http.StatusForbidden, "forbidden", "this API key may not use this endpoint", nil)
			default:
				keyID = key.ID
				h(sw, r.WithContext(context.WithValue(r.Context(), keyIDKey, key.ID)))
			}
		}
		a.engine.metrics.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		if a.log.Enabled(r.Context(), slog.LevelDebug) {
			a.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
				slog.String("request_id", id), slog.String("method", loggedMethod(r)), slog.String("path", loggedPath(r)),
				slog.Int("status", sw.code), slog.String("key", keyID), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
		}
	})
}

func (a *API) score(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, event.MaxSize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, r, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("event larger than %d bytes", event.MaxSize), nil)
		} else {
			writeError(w, r, http.StatusBadRequest, "bad_body", "could not read the request body: the connection ended or its framing is broken", nil)
		}
		return
	}
	ev, err := event.Decode(body, a.now())
	if err != nil {
		var ve *event.Error
		if errors.As(err, &ve) {
			if ve.PAN {
				a.engine.metrics.refused.WithLabelValues("pan").Inc()
				writeError(w, r, http.StatusUnprocessableEntity, "card_number_refused", "the event contains what looks like a raw card number; send a token", ve.Fields)
				return
			}
			a.engine.metrics.refused.WithLabelValues("invalid").Inc()
			writeError(w, r, http.StatusBadRequest, "invalid_event", ve.Error(), ve.Fields)
			return
		}
		writeError(w, r, http.StatusBadRequest, "invalid_event", err.Error(), nil)
		return
	}
	explain := r.URL.Query().Get("explain") == "true"
	d, sig, err := a.engine.decide(r.Context(), ev, explain, SourceHTTP)
	defer a.engine.emit(sig) // after the response: the caller never waits on signals
	switch {
	case errors.Is(err, ErrIDReused):
		writeError(w, r, http.StatusConflict, "id_reused", "this id was already scored with different content (time, amount, currency, card, account or merchant)", nil)
		return
	case err != nil:
		a.log.Error("scoring failed", "request_id", requestID(r), "event_id", ev.ID, "err", err)
		writeError(w, r, http.StatusInternalServerError, "internal", "scoring failed", nil)
		return
	}
	d.LatencyUS = time.Since(start).Microseconds()
	writeJSON(w, http.StatusOK, d)
	if sig != nil {
		http.NewResponseController(w).Flush() // the answer leaves now; the signal is built after (deferred above)
	}
}

// responseBufs recycles the buffers of JSON responses.
var responseBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ruleView is a rule as GET /v1/rules lists it.
type ruleView struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	When        string   `json:"when"`
	Action      string   `json:"action"`
	Score       int      `json:"score"`
	Reason      string   `json:"reason"`
	Mode        string   `json:"mode"`
	Rollout     float64  `json:"rollout"`
	Features    []string `json:"features"`
	Owner       string   `json:"owner,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

func (a *API) rules(w http.ResponseWriter, r *http.Request) {
	s := a.engine.rules.Current()
	out := struct {
		Version  string     `json:"version"`
		Label    string     `json:"label,omitempty"`
		StepUpAt int        `json:"step_up_at"`
		PauseAt  int        `json:"pause_at"`
		Rules    []ruleView `json:"rules"`
	}{Version: s.VersionString(), Label: s.Label, StepUpAt: s.StepUpAt, PauseAt: s.PauseAt, Rules: []ruleView{}}
	for _, rl := range s.Rules {
		v := ruleView{Name: rl.Name, Description: rl.Description, When: rl.When, Action: string(rl.Action), Score: rl.Score,
			Reason: rl.Reason, Mode: string(rl.Mode), Rollout: 100, Features: rl.Features, Owner: rl.Owner, Tags: rl.Tags}
		if rl.Rollout != nil {
			v.Rollout = *rl.Rollout
		}
		out.Rules = append(out.Rules, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	if a.reloader == nil {
		writeError(w, r, http.StatusNotImplemented, "not_supported", "reloading is not configured", nil)
		return
	}
	rep, err := a.reloader.ReloadReport(rules.WithActor(r.Context(), "key:"+KeyID(r.Context())), "api")
	if err != nil {
		// one field per problem: its position (file:line:col) and what is wrong
		var fields []event.FieldError
		for _, e := range rules.Errors(err) {
			msg := e.Err.Error()
			if e.Rule != "" {
				msg = fmt.Sprintf("rule %q: %s", e.Rule, msg)
			}
			path := ""
			if e.Pos.File != "" {
				path = e.Pos.String()
			}
			fields = append(fields, event.FieldError{Path: path, Reason: msg})
		}
		writeError(w, r, http.StatusUnprocessableEntity, "reload_failed", err.Error(), fields)
		return
	}
	out := reloadAnswer{Status: "reloaded", Ruleset: a.engine.rules.Current().VersionString(), FeaturesFresh: rep.FeaturesFresh}
	if !rep.Changed {
		out.Status = "unchanged" // the files are those of the running set
	}
	writeJSON(w, http.StatusOK, out)
}

// reloadAnswer is the body of a successful POST /-/reload.
type reloadAnswer struct {
	Status  string `json:"status"` // reloaded or unchanged
	Ruleset string `json:"ruleset"`
	// FeaturesFresh lists the features that start with empty windows, when
	// the reload changed the feature definitions.
	FeaturesFresh []string `json:"features_fresh,omitempty"`
}

// apiError is the body of every error response.
type apiError struct {
	Error struct {
		Code    string             `json:"code"`
		Message string             `json:"message"`
		Fields  []event.FieldError `json:"fields,omitempty"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string, fields []event.FieldError) {
	var e apiError
	e.Error.Code, e.Error.Message, e.Error.Fields = code, msg, fields
	e.RequestID = requestID(r)
	writeJSON(w, status, &e)
}

// writeJSON writes v as the whole response, with its Content-Length: a
// handler may flush it and go on working (the score API builds the
// decision's signal after).
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := responseBufs.Get().(*bytes.Buffer)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // never a 200 with an empty body
		buf.Reset()
		status = http.StatusInternalServerError
		buf.WriteString(`{"error":{"code":"internal","message":"the response could not be encoded"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	if buf.Cap() <= 64<<10 { // a large rules listing is not kept
		responseBufs.Put(buf)
	}
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey).(string)
	return id
}

// validRequestID reports whether a client's X-Request-Id is kept: short
// printable ASCII, and no card number (it is echoed and logged).
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return !event.ContainsPAN(id)
}

// loggedPath is the request's path for logs and error messages: withheld
// when it holds what looks like a card number.
func loggedPath(r *http.Request) string {
	if event.ContainsPAN(r.URL.Path) {
		return "(a path holding what looks like a card number)"
	}
	return r.URL.Path
}

// loggedMethod is the request's method for logs and error messages: a
// method HTTP defines as it is, any other withheld (it is arbitrary text
// from the client, a card number maybe).
func loggedMethod(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return r.Method
	}
	return "(another method)"
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
