package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/rules"
)

// testKeys are secrets with the scopes each one grants.
var testKeys = map[string][]Scope{
	"vgl_score_only_secret_0001": {ScopeScore},
	"vgl_rules_only_secret_0002": {ScopeRulesRead},
	"vgl_metrics_only_secret_03": {ScopeMetrics},
	"vgl_admin_secret_00000004":  {ScopeAdmin},
}

func testKeyring(t testing.TB) *Keyring {
	var b strings.Builder
	b.WriteString("keys:\n")
	i := 0
	for secret, scopes := range testKeys {
		i++
		kr := NewKeyringFromSecret("x", secret)
		fmt.Fprintf(&b, "  - id: key%d\n    sha256: %s\n    scopes: [%s]\n", i, kr.keys[0].SHA256, joinScopes(scopes))
	}
	kr, err := ParseKeyring("test", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func joinScopes(s []Scope) string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return strings.Join(out, ", ")
}

// newTestEngine builds an engine on the embedded default features and rules.
func newTestEngine(t testing.TB) *Engine {
	t.Helper()
	return newTestEngineWith(t, Options{})
}

// newTestEngineWith is newTestEngine with engine options.
func newTestEngineWith(t testing.TB, o Options) *Engine {
	t.Helper()
	fe := newTestFeatures(t)
	srcs, err := rules.ReadDir(rules.DefaultFS, rules.DefaultDir, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(srcs, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(fe, rules.NewManager(set), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type fakeReloader struct {
	calls int
	load  func() // what the reload does; nil: the files had not changed
	fail  error  // returned instead, when set
	fresh []string
}

func (f *fakeReloader) ReloadReport(context.Context, string) (rules.Report, error) {
	f.calls++
	if f.fail != nil {
		return rules.Report{}, f.fail
	}
	if f.load != nil {
		f.load()
		return rules.Report{Changed: true, FeaturesFresh: f.fresh}, nil
	}
	return rules.Report{}, nil
}

// TestReloadSaysWhetherTheRulesChanged: POST /-/reload answers "unchanged"
// when the running set stays, "reloaded" with the new version otherwise.
func TestReloadSaysWhetherTheRulesChanged(t *testing.T) {
	e := newTestEngine(t)
	rl := &fakeReloader{}
	api, err := NewAPI(e, testKeyring(t), slog.New(slog.NewTextHandler(io.Discard, nil)), rl)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	if _, body := do(t, srv, "POST", "/-/reload", adminKey, ""); !strings.Contains(string(body), `"status":"unchanged"`) {
		t.Errorf("nothing changed: %s", body)
	}
	rl.load = func() {
		_, _, err := e.Rules().Load([]rules.Source{{Name: "r.yaml", Data: []byte("rules:\n  - {name: big, when: amount > 100, action: step_up, score: 10, reason: BIG}\n")}}, e.Features().Schema())
		if err != nil {
			t.Error(err)
		}
	}
	_, body := do(t, srv, "POST", "/-/reload", adminKey, "")
	if !strings.Contains(string(body), `"status":"reloaded"`) || !strings.Contains(string(body), e.Rules().Current().VersionString()) {
		t.Errorf("new rules: %s", body)
	}
	// A failed reload lists each problem as a field: position and reason.
	_, cerr := rules.Compile([]rules.Source{{Name: "bad.yaml", Data: []byte("rules:\n  - {name: x, when: amount >, action: pause, score: 1, reason: X}\n  - {name: y, when: nope > 1, action: pause, score: 1, reason: Y}\n")}}, e.Features().Schema())
	rl.load, rl.fail = nil, cerr
	resp, body := do(t, srv, "POST", "/-/reload", adminKey, "")
	var ae apiError
	json.Unmarshal(body, &ae)
	if resp.StatusCode != http.StatusUnprocessableEntity || ae.Error.Code != "reload_failed" || len(ae.Error.Fields) != 2 ||
		!strings.HasPrefix(ae.Error.Fields[0].Path, "bad.yaml:2:") || !strings.HasPrefix(ae.Error.Fields[1].Reason, `rule "y": unknown name nope`) {
		t.Errorf("failed reload: %d %s", resp.StatusCode, body)
	}
}

func newTestServer(t *testing.T) (*httptest.Server, *fakeReloader) {
	t.Helper()
	rl := &fakeReloader{}
	api, err := NewAPI(newTestEngine(t), testKeyring(t), slog.New(slog.NewTextHandler(io.Discard, nil)), rl)
	if err != nil {
		t.Fatal(err)
	}
	api.now = func() time.Time { return testNow }
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, rl
}

func do(t *testing.T, srv *httptest.Server, method, path, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

const (
	scoreKey   = "vgl_score_only_secret_0001"
	rulesKey   = "vgl_rules_only_secret_0002"
	metricsKey = "vgl_metrics_only_secret_03"
	adminKey   = "vgl_admin_secret_00000004"
)

func tx(id string, amount int, extra string) string {
	return fmt.Sprintf(`{"id":%q,"time":"2026-11-22T10:00:00Z","amount":%d,"currency":"USD","card":{"token":"tok_a","country":"US"}%s}`, id, amount, extra)
}

func TestAuthMatrix(t *testing.T) {
	srv, rl := newTestServer(t)
	endpoints := []struct {
		method, path, body string
		scope              Scope
	}{
		{"POST", "/v1/score", tx("auth_1", 100, ""), ScopeScore},
		{"GET", "/v1/rules", "", ScopeRulesRead},
		{"GET", "/metrics", "", ScopeMetrics},
		{"POST", "/-/reload", "", ScopeAdmin},
		{"GET", "/v1/openapi.json", "", anyScope},
		{"GET", "/healthz", "", ""},
		{"GET", "/readyz", "", ""},
	}
	keys := map[string]string{"none": "", "wrong": "vgl_not_a_key_at_all", "score": scoreKey, "rules": rulesKey, "metrics": metricsKey, "admin": adminKey}
	for _, ep := range endpoints {
		for name, key := range keys {
			t.Run(ep.path+"/"+name, func(t *testing.T) {
				resp, body := do(t, srv, ep.method, ep.path, key, ep.body)
				want := http.StatusOK
				switch {
				case ep.scope == "":
				case key == "" || name == "wrong":
					want = http.StatusUnauthorized
				case ep.scope == anyScope:
				case name == "admin" || testKeys[key][0] == ep.scope:
				default:
					want = http.StatusForbidden
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, body)
				}
				if want == http.StatusUnauthorized || want == http.StatusForbidden {
					// neither says which part was wrong, nor names keys or scopes
					for _, leak := range []string{"scope", "score", "admin", "key1", "sha"} {
						if strings.Contains(string(body), `"`+leak) {
							t.Errorf("error body leaks %q: %s", leak, body)
						}
					}
				}
			})
		}
	}
	if rl.calls == 0 {
		t.Error("reload never called")
	}
	// A malformed Authorization header is a 401 too.
	if code := authStatus(t, srv, "Basic "+rulesKey); code != http.StatusUnauthorized {
		t.Errorf("basic auth: %d", code)
	}
	// Two Authorization headers are a 401 whichever comes first: a proxy
	// and vigil could read different ones.
	for _, pair := range [][]string{{"Bearer " + rulesKey, "Bearer x"}, {"Bearer x", "Bearer " + rulesKey}, {"Bearer " + rulesKey, "Bearer " + rulesKey}} {
		if code := authStatus(t, srv, pair...); code != http.StatusUnauthorized {
			t.Errorf("two Authorization headers %q: %d, want 401", pair, code)
		}
	}
}

// authStatus is the status of GET /v1/rules with these Authorization
// headers.
func authStatus(t *testing.T, srv *httptest.Server, auth ...string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/rules", nil)
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestScoreDecisions(t *testing.T) {
	srv, _ := newTestServer(t)
	for _, tc := range []struct {
		body, want string
		code       string
	}{
		{tx("d1", 4599, ""), "approve", ""},
		{tx("d2", 250000, `,"account":{"id":"fresh"}`), "step_up", "LARGE_AMOUNT"},
		{tx("d3", 1500000, ""), "pause", "VERY_LARGE_AMOUNT"},
		{`{"id":"d4","amount":100,"currency":"USD","card":{"token":"tok_z","country":"KP"}}`, "pause", "HIGH_RISK_COUNTRY"},
	} {
		resp, body := do(t, srv, "POST", "/v1/score", scoreKey, tc.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var d Decision
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		if string(d.Decision) != tc.want {
			t.Errorf("%s: decision %s, want %s (%s)", tc.body, d.Decision, tc.want, body)
		}
		if tc.code != "" && (len(d.Reasons) == 0 || d.Reasons[0].Code != tc.code) {
			t.Errorf("%s: reasons %v, want first %s", tc.body, d.Reasons, tc.code)
		}
		if d.Ruleset == "" || !strings.HasPrefix(d.Ruleset, "starter@") {
			t.Errorf("ruleset %q", d.Ruleset)
		}
		if d.Explain != nil {
			t.Error("explain without ?explain=true")
		}
	}
}

func TestScoreVelocityAndIdempotency(t *testing.T) {
	srv, _ := newTestServer(t)
	score := func(id string) Decision {
		body := fmt.Sprintf(`{"id":%q,"time":"2026-11-22T10:00:0%sZ","amount":500,"currency":"USD","card":{"token":"tok_burst"}}`, id, id[len(id)-1:])
		resp, b := do(t, srv, "POST", "/v1/score?explain=true", scoreKey, body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var d Decision
		json.Unmarshal(b, &d)
		return d
	}
	for i := 1; i <= 4; i++ {
		d := score(fmt.Sprintf("burst_%d", i))
		if d.Explain == nil || d.Explain.Features["card_count_10m"] != float64(i) {
			t.Fatalf("event %d: card_count_10m = %v", i, d.Explain)
		}
		// scoring the same id again does not count it twice
		again := score(fmt.Sprintf("burst_%d", i))
		if !again.Replayed || again.Decision != d.Decision || again.Score != d.Score {
			t.Fatalf("replay %d: %+v vs %+v", i, again, d)
		}
	}
	d := score("burst_5")
	if d.Decision != rules.StepUp || d.Explain.Features["card_count_10m"] != float64(5) {
		t.Fatalf("5th event in 10 minutes: %+v", d)
	}
	if d.Reasons[0].Code != "CARD_VELOCITY_10M" {
		t.Errorf("reasons %v", d.Reasons)
	}
	// the same id with other content is a conflict
	resp, body := do(t, srv, "POST", "/v1/score", scoreKey, `{"id":"burst_1","amount":999,"currency":"USD","card":{"token":"tok_burst"}}`)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("reused id: %d %s", resp.StatusCode, body)
	}
	// a retry without the time is the same transaction, either way round;
	// another time is another transaction
	for i, tc := range []struct{ first, retry, want string }{
		{`"time":"2026-11-22T11:59:00Z",`, ``, "200 replayed"},
		{``, `"time":"2026-11-22T11:59:00Z",`, "200 replayed"},
		{`"time":"2026-11-22T11:59:00Z",`, `"time":"2026-11-22T11:58:00Z",`, "409"},
	} {
		id := fmt.Sprint("retry_", i)
		var got string
		for _, tm := range []string{tc.first, tc.retry} {
			resp, body := do(t, srv, "POST", "/v1/score", scoreKey, fmt.Sprintf(`{"id":%q,%s"amount":500,"currency":"USD","card":{"token":"tok_retry"}}`, id, tm))
			got = fmt.Sprint(resp.StatusCode)
			if strings.Contains(string(body), `"replayed":true`) {
				got += " replayed"
			}
		}
		if got != tc.want {
			t.Errorf("first %s retry %s: %s, want %s", tc.first, tc.retry, got, tc.want)
		}
	}
}

func TestConcurrentDuplicatesCountOnce(t *testing.T) {
	e := newTestEngine(t)
	var wg sync.WaitGroup
	decisions := make([]*Decision, 16)
	for i := range decisions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := mustEvent(t, tx("dup", 100, ""))
			d, err := e.Score(context.Background(), ev, false)
			if err != nil {
				t.Error(err)
				return
			}
			decisions[i] = d
		}()
	}
	wg.Wait()
	replayed := 0
	for _, d := range decisions {
		if d != nil && d.Replayed {
			replayed++
		}
	}
	if replayed != len(decisions)-1 {
		t.Errorf("%d replayed, want %d", replayed, len(decisions)-1)
	}
	d, err := e.Score(context.Background(), mustEvent(t, tx("dup_next", 100, "")), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Explain.Features["card_count_1h"]; got != float64(2) {
		t.Errorf("card_count_1h = %v, want 2 (the duplicate counted once)", got)
	}
}

func TestScoreErrors(t *testing.T) {
	srv, _ := newTestServer(t)
	for _, tc := range []struct {
		body   string
		status int
		code   string
		path   string
	}{
		{`{"id":"e1","amount":1,"currency":"USD","card":{"token":"t"},"extra":1}`, 400, "invalid_event", "extra"},
		{`{"id":"e2","amount":1,"currency":"USD","card":{"token":"4111111111111111"}}`, 422, "card_number_refused", "card.token"},
		{`{"id":"e3","amount":"x"}`, 400, "invalid_event", "amount"},
		{`{"id":"tx_k6","currency":"USD","card":{"token":"t"}}`, 400, "invalid_event", "amount"},                                      // no amount is not an amount of 0
		{`{"id":"e3b","amount":null,"currency":"USD","card":{"token":"t"}}`, 400, "invalid_event", "amount"},                          // nor is null
		{`{"id":"e3c","amount":0,"currency":"USD","card":{"token":"t"}}`, 200, "", ""},                                                // a zero-amount authorization
		{`{"id":"e3d","time":"0001-01-01T00:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, 400, "invalid_event", "time"}, // the zero time is not "now"
		{strings.Repeat(" ", 70<<10), 413, "too_large", ""},
		{strings.Repeat(" ", 64<<10+1), 413, "too_large", ""},                                                                                 // one byte over
		{tx("e4", 1, "") + strings.Repeat(" ", 64<<10-len(tx("e4", 1, ""))), 200, "", ""},                                                     // exactly the limit
		{`{"id":"e5","amount":1,"currency":"USD","card":{"token":"4111111111111111","token":"t"}}`, 422, "card_number_refused", "card.token"}, // an overwritten duplicate is scanned too
		{`{"id":"e6","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"x":{"y":"4111111111111111"}}}`, 422, "card_number_refused", "attributes.x.y"},
		{`{"id":"e6b","amount":1,"currency":"USD","card":{"token":"t"},"device":{"user_agent":"４１１１\u00a01111\u20131111 1111"}}`, 422, "card_number_refused", "device.user_agent"}, // full-width digits, Unicode separators (escaped in JSON)
	} {
		resp, body := do(t, srv, "POST", "/v1/score", scoreKey, tc.body)
		var e apiError
		json.Unmarshal(body, &e)
		if resp.StatusCode != tc.status || e.Error.Code != tc.code {
			t.Errorf("%.40s: %d %s", tc.body, resp.StatusCode, body)
			continue
		}
		if tc.status == http.StatusOK {
			continue
		}
		if tc.path != "" && (len(e.Error.Fields) == 0 || e.Error.Fields[0].Path != tc.path) {
			t.Errorf("%.40s: fields %v, want path %s", tc.body, e.Error.Fields, tc.path)
		}
		if e.RequestID == "" || resp.Header.Get("X-Request-Id") != e.RequestID {
			t.Errorf("request id %q vs header %q", e.RequestID, resp.Header.Get("X-Request-Id"))
		}
		if strings.Contains(string(body), "4111111111111111") {
			t.Error("response repeats the card number")
		}
	}
	resp, _ := do(t, srv, "GET", "/nope", scoreKey, "")
	if resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
	// A card number in the path is neither echoed nor logged.
	resp, body := do(t, srv, "GET", "/cards/4111-1111-1111-1111", "", "")
	if resp.StatusCode != 404 || strings.Contains(string(body), "1111") {
		t.Errorf("path with a card number: %d %s", resp.StatusCode, body)
	}
	// A known path with another method is a 405 naming the allowed ones.
	for path, allow := range map[string]string{"/v1/score": "POST", "/healthz": "GET", "/-/reload": "POST"} {
		method := "GET"
		if allow == "GET" {
			method = "POST"
		}
		resp, body := do(t, srv, method, path, adminKey, "")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow {
			t.Errorf("%s %s: %d, Allow %q: %s", method, path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
}

// TestRequestLineNeverEchoed: a card number in the method or the path is
// neither echoed (body, headers: no redirect to a cleaned path) nor
// logged; paths that are not clean are refused, clean ones still routed.
func TestRequestLineNeverEchoed(t *testing.T) {
	var logged strings.Builder
	api, err := NewAPI(newTestEngine(t), testKeyring(t), slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := api.Handler()
	for _, tc := range []struct {
		method, target string
		key            string
		status         int
		message        string // a substring of the answer
		loggedMethod   string
	}{
		{"4111111111111111", "/nope", scoreKey, 404, "no such endpoint: (another method) /nope", "(another method)"},
		{"4111111111111111", "/nope", "", 404, "no such endpoint: (another method) /nope", "(another method)"},
		{"4111111111111111", "/v1/score", scoreKey, 405, "/v1/score takes POST", "(another method)"},
		{"PROPFIND", "/nope", "", 404, "(another method) /nope", "(another method)"},
		{"DELETE", "/nope", "", 404, "no such endpoint: DELETE /nope", "DELETE"},
		// http.ServeMux would redirect these to /4111111111111111 (307, in Location and the body)
		{"GET", "/x/../4111111111111111", "", 404, "no empty, . or .. segment", "GET"},
		{"GET", "//4111111111111111", "", 404, "no empty, . or .. segment", "GET"},
		{"GET", "/./4111111111111111", "", 404, "no empty, . or .. segment", "GET"},
		{"GET", "/4111111111111111/", "", 404, "withheld", "GET"},
		{"GET", "/x/%2e%2e/4111111111111111", "", 404, "withheld", "GET"}, // not cleaned by the mux: the path is withheld
		{"POST", "/x/../v1/score", scoreKey, 404, "no empty, . or .. segment", "POST"},
		{"GET", "//healthz", "", 404, "no empty, . or .. segment", "GET"},
		{"GET", "/healthz/..", "", 404, "no empty, . or .. segment", "GET"},
		// clean paths are routed as before
		{"GET", "/healthz", "", 200, `"ok"`, "GET"},
		{"GET", "/readyz", "", 200, `"ready"`, "GET"},
		{"GET", "/v1/rules?x=/../", rulesKey, 200, `"rules"`, "GET"},
		{"GET", "/v1/openapi.json", scoreKey, 200, `"openapi"`, "GET"},
		{"GET", "/metrics", metricsKey, 200, "vigil_", "GET"},
		{"POST", "/v1/score", scoreKey, 400, "invalid_event", "POST"},
		{"POST", "/-/reload", adminKey, 501, "not_supported", "POST"},
		{"GET", "/4111111111111111", "", 404, "withheld", "GET"},
	} {
		logged.Reset()
		req := httptest.NewRequest(tc.method, tc.target, nil)
		req.Header.Set("X-Request-Id", "req-1")
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		answer := fmt.Sprint(rec.Header()) + rec.Body.String()
		if rec.Code != tc.status || !strings.Contains(strings.ReplaceAll(answer, "(a path holding what looks like a card number)", "withheld"), tc.message) {
			t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.target, rec.Code, answer, tc.status, tc.message)
		}
		if strings.Contains(answer, "4111") || strings.Contains(logged.String(), "4111") {
			t.Errorf("%s %s: the card number is repeated:\n%s\nlog: %s", tc.method, tc.target, answer, logged.String())
		}
		if rec.Header().Get("X-Request-Id") != "req-1" || !strings.Contains(logged.String(), `"method":"`+tc.loggedMethod+`"`) {
			t.Errorf("%s %s: request id %q, log %s", tc.method, tc.target, rec.Header().Get("X-Request-Id"), logged.String())
		}
	}
}

// TestScoreBodyCutShort: a body that ends before its Content-Length is a
// 400 about the body, not a 413.
func TestScoreBodyCutShort(t *testing.T) {
	srv, _ := newTestServer(t)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"id\":", scoreKey)
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"bad_body"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

// TestBearerSchemeCaseInsensitive: "bearer" and "BEARER" are "Bearer".
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	srv, _ := newTestServer(t)
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		if code := authStatus(t, srv, scheme+" "+rulesKey); code != http.StatusOK {
			t.Errorf("%s: %d", scheme, code)
		}
	}
}

func TestRequestIDEchoed(t *testing.T) {
	srv, _ := newTestServer(t)
	req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id = %q", got)
	}
	// one holding a card number is replaced (it is echoed and logged)
	req.Header.Set("X-Request-Id", "4111111111111111")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, "1111") {
		t.Errorf("X-Request-Id = %q", got)
	}
}

func TestMetricsExposed(t *testing.T) {
	srv, _ := newTestServer(t)
	do(t, srv, "POST", "/v1/score", scoreKey, tx("m1", 1500000, ""))
	do(t, srv, "POST", "/v1/score", scoreKey, `{"id":"m2"}`)
	_, body := do(t, srv, "GET", "/metrics", metricsKey, "")
	for _, want := range []string{
		`vigil_score_duration_seconds_count 1`,
		`vigil_decisions_total{decision="pause"} 1`,
		`vigil_rule_hits_total{counted="yes",rule="very_large_amount"} 1`,
		`vigil_http_requests_total{code="400",handler="score"} 1`,
		`vigil_events_refused_total{reason="invalid"} 1`,
		`vigil_ruleset_info{label="starter"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	srv, _ := newTestServer(t)
	resp, body := do(t, srv, "GET", "/v1/openapi.json", scoreKey, "")
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("%d %.100s", resp.StatusCode, body)
	}
	for _, p := range []string{"/v1/score", "/healthz", "/metrics", "/-/reload", "/v1/rules"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi lacks %s", p)
		}
	}
}

// TestWriteJSONNeverEmpty: a value JSON cannot carry is a 500 with an
// error body, not a 200 with an empty one.
func TestWriteJSONNeverEmpty(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusOK, map[string]any{"x": math.Inf(1)})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":"internal"`) ||
		rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("%d %q (Content-Length %s)", rec.Code, rec.Body.String(), rec.Header().Get("Content-Length"))
	}
}
