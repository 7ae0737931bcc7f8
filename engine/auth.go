package engine

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Scope is a permission an API key grants.
type Scope string

// Scopes. Admin grants every other scope.
const (
	ScopeScore     Scope = "score"
	ScopeRulesRead Scope = "rules:read"
	ScopeLabels    Scope = "labels"
	ScopeMetrics   Scope = "metrics"
	ScopeAdmin     Scope = "admin"
)

// AllScopes lists every scope.
var AllScopes = []Scope{ScopeScore, ScopeRulesRead, ScopeLabels, ScopeMetrics, ScopeAdmin}

// APIKey is one credential: an id for logs, the SHA-256 of its secret (the
// secret itself is never stored) and its scopes.
type APIKey struct {
	ID     string  `yaml:"id"`
	SHA256 string  `yaml:"sha256"`
	Scopes []Scope `yaml:"scopes"`
	hash   []byte
}

// Allows reports whether the key grants scope.
func (k *APIKey) Allows(s Scope) bool {
	return slices.Contains(k.Scopes, s) || slices.Contains(k.Scopes, ScopeAdmin)
}

// Keyring holds the API keys and authenticates requests.
type Keyring struct {
	keys []*APIKey
}

// keysFile is the on-disk format of --api-keys-file.
type keysFile struct {
	Keys []*APIKey `yaml:"keys"`
}

// LoadKeyring reads a keys file.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	return ParseKeyring(path, data)
}

// ValidKeyID reports whether id can be a key's id: it is shown in logs
// and printed into keys files as it is (a plain YAML scalar), so letters,
// digits and . _ - @ / : only, at most 64, starting with a letter or digit.
func ValidKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._-@/:", rune(c))) {
			return false
		}
	}
	return true
}

// ParseKeyring parses a keys file's content strictly.
func ParseKeyring(name string, data []byte) (*Keyring, error) {
	var f keysFile
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("api keys %s: %w", name, err)
	}
	// every shape problem at once, by line and key (keys[1].scope: unknown
	// key, did you mean scopes?), as the config file's
	if err := checkShape(&doc, reflect.TypeOf(&f)); err != nil {
		return nil, fmt.Errorf("api keys %s:\n%w", name, err)
	}
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	if err := d.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // io.EOF: no document (empty, or comments only): no keys, said below
		return nil, fmt.Errorf("api keys %s: %w", name, err)
	}
	kr := &Keyring{}
	var errs []error
	ids := map[string]bool{}
	secrets := map[string]string{} // sha256 -> the first key's id
	for i, k := range f.Keys {
		if k == nil {
			errs = append(errs, fmt.Errorf("api keys %s: key %d: empty entry", name, i+1))
			continue
		}
		where := fmt.Sprintf("api keys %s: key %d (%q)", name, i+1, k.ID)
		if !ValidKeyID(k.ID) { // not repeated: it may be anything, a secret pasted in the wrong place
			where = fmt.Sprintf("api keys %s: key %d", name, i+1)
		}
		h, err := hex.DecodeString(k.SHA256)
		switch {
		case k.ID == "":
			errs = append(errs, fmt.Errorf("%s: id is required", where))
		case !ValidKeyID(k.ID):
			errs = append(errs, fmt.Errorf("%s: id: use letters, digits and . _ - @ / : (at most 64, starting with a letter or digit); ids are shown in logs", where))
		case ids[k.ID]:
			errs = append(errs, fmt.Errorf("%s: id used twice", where))
		}
		if err != nil || len(h) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s: sha256 must be the 64 hex digits of the secret's SHA-256 (vigil keys generate prints it)", where))
		} else if first, ok := secrets[string(h)]; ok {
			errs = append(errs, fmt.Errorf("%s: same secret as key %q (each key needs its own secret)", where, first))
		} else {
			secrets[string(h)] = k.ID
		}
		if len(k.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("%s: at least one scope is required", where))
		}
		for _, s := range k.Scopes {
			if !slices.Contains(AllScopes, s) {
				if ValidKeyID(string(s)) {
					errs = append(errs, fmt.Errorf("%s: unknown scope %q", where, s))
				} else { // not repeated: a secret pasted in the wrong place, maybe
					errs = append(errs, fmt.Errorf("%s: unknown scope (not repeated; scopes are %v)", where, AllScopes))
				}
			}
		}
		ids[k.ID] = true
		k.hash = h
		kr.keys = append(kr.keys, k)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(kr.keys) == 0 {
		return nil, fmt.Errorf("api keys %s: no keys", name)
	}
	return kr, nil
}

// NewKeyringFromSecret makes a keyring of one full-scope key (the
// VIGIL_API_KEY or a generated development key).
func NewKeyringFromSecret(id, secret string) *Keyring {
	h := sha256.Sum256([]byte(secret))
	return &Keyring{keys: []*APIKey{{ID: id, SHA256: hex.EncodeToString(h[:]), Scopes: []Scope{ScopeAdmin}, hash: h[:]}}}
}

// Len is the number of keys.
func (kr *Keyring) Len() int { return len(kr.keys) }

// Authenticate returns the key whose secret the request's bearer token is.
// Every key's hash is compared in constant time, so the time taken does not
// depend on which key (if any) matched.
func (kr *Keyring) Authenticate(r *http.Request) (*APIKey, bool) {
	// One Authorization header only: with two, a proxy reading the last and
	// vigil the first would disagree on who asked.
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return nil, false
	}
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, false
	}
	h := sha256.Sum256([]byte(token))
	var found *APIKey
	for _, k := range kr.keys {
		if subtle.ConstantTimeCompare(h[:], k.hash) == 1 {
			found = k
		}
	}
	return found, found != nil
}

// GenerateSecret returns a new random API secret and its SHA-256 in hex.
func GenerateSecret() (secret, sha string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = "vgl_" + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(h[:]), nil
}
