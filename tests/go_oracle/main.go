// Command go_oracle is the differential test's judge: a stand-in for the Go KMS behind kmsgate
// (Key Protect's server is Go: net/http, a gorilla/mux-style router on the decoded path,
// encoding/json into structs). It answers every request with 200 and a JSON "reading" of it:
// which Key Protect operation Go routes it to, which instance Go sees, and what the body means
// to encoding/json. tests/differential.rs compares these readings with kmsgate's decisions.
//
// Standard library only (Debian's golang-go, Go >= 1.19): routing is done by hand on
// r.URL.Path, the decoded path, the way gorilla/mux does it by default (a path that
// path.Clean changes is answered with a redirect, not executed; routes are matched exactly,
// without StrictSlash).
//
// Usage: go_oracle -listen 127.0.0.1:0 (the bound address is the first line of stdout).
// GET /__oracle/count answers {"count": N}, the number of readings given so far, and
// GET /__oracle/seen the X-Diff-Case header of each of them.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// keyCreate is the body of POST /api/v2/keys (and /keys_with_policy_overrides).
type keyCreate struct {
	Metadata *struct {
		CollectionType  string `json:"collectionType"`
		CollectionTotal int    `json:"collectionTotal"`
	} `json:"metadata"`
	Resources []struct {
		Type           string `json:"type"`
		Name           string `json:"name"`
		Description    string `json:"description"`
		Extractable    *bool  `json:"extractable"`
		Payload        string `json:"payload"`
		EncryptedNonce string `json:"encryptedNonce"`
		IV             string `json:"iv"`
	} `json:"resources"`
}

// keyAction is Go's KeysActionRequest (wrap, unwrap, rewrap, rotate, restore, ...).
type keyAction struct {
	Plaintext      string   `json:"plaintext"`
	AAD            []string `json:"aad"`
	Ciphertext     string   `json:"ciphertext"`
	Payload        string   `json:"payload"`
	EncryptedNonce string   `json:"encryptedNonce"`
	IV             string   `json:"iv"`
}

// policyPut is the body of PUT /api/v2/instance/policies.
type policyPut struct {
	Metadata *struct {
		CollectionType  string `json:"collectionType"`
		CollectionTotal int    `json:"collectionTotal"`
	} `json:"metadata"`
	Resources []struct {
		PolicyType string `json:"policy_type"`
		PolicyData struct {
			Enabled    *bool `json:"enabled"`
			Attributes *struct {
				AllowedIP         []string `json:"allowed_ip"`
				AllowedNetwork    string   `json:"allowed_network"`
				CreateRootKey     *bool    `json:"create_root_key"`
				CreateStandardKey *bool    `json:"create_standard_key"`
				ImportRootKey     *bool    `json:"import_root_key"`
				ImportStandardKey *bool    `json:"import_standard_key"`
				EnforceToken      *bool    `json:"enforce_token"`
				IntervalMonth     *int     `json:"interval_month"`
			} `json:"attributes"`
		} `json:"policy_data"`
	} `json:"resources"`
}

// createReading is what a key create/import body means to Go.
type createReading struct {
	OK        bool `json:"ok"`
	Resources int  `json:"resources"`
	Root      bool `json:"root"`
	Import    bool `json:"import"`
	Token     bool `json:"token"`
	B64OK     bool `json:"b64_ok"`
}

// actionReading is what a key action body means to Go.
type actionReading struct {
	OK     bool `json:"ok"`
	Import bool `json:"import"`
	Token  bool `json:"token"`
	B64OK  bool `json:"b64_ok"`
}

// policyReading is what an instance-policy PUT body means to Go.
type policyReading struct {
	OK    bool     `json:"ok"`
	Types []string `json:"types"`
}

type reading struct {
	Seq        uint64        `json:"seq"`
	Case       string        `json:"case"`
	Method     string        `json:"method"`
	Path       string        `json:"path"`
	Query      string        `json:"query"`
	Route      string        `json:"route"`
	LooseRoute string        `json:"loose_route"`
	Instance   string        `json:"instance"`
	InstanceOK bool          `json:"instance_ok"`
	Instances  []string      `json:"instances"`
	Host       string        `json:"host"`
	Root       bool          `json:"root"`
	Import     bool          `json:"import"`
	Token      bool          `json:"token"`
	BodyOK     bool          `json:"body_ok"`
	Policy     []string      `json:"policy_types"`
	Create     createReading `json:"create"`
	Action     actionReading `json:"action"`
	PolicyPut  policyReading `json:"policy_put"`
	BodyLen    int           `json:"body_len"`
}

type oracle struct {
	mu    sync.Mutex
	count uint64
	seen  []string // the X-Diff-Case header of every request read
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("go_oracle: listen: %v", err)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, ln.Addr().String())
	out.Flush()
	o := &oracle{}
	srv := &http.Server{
		Handler:           o,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	log.Fatal(srv.Serve(ln))
}

func (o *oracle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.RequestURI == "/__oracle/count" {
		o.mu.Lock()
		n := o.count
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"count\":%d}", n)
		return
	}
	if r.Method == http.MethodGet && r.RequestURI == "/__oracle/seen" {
		o.mu.Lock()
		seen := append([]string{}, o.seen...)
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	o.mu.Lock()
	o.count++
	seq := o.count
	o.seen = append(o.seen, r.Header.Get("X-Diff-Case"))
	o.mu.Unlock()

	rd := reading{
		Seq:     seq,
		Case:    r.Header.Get("X-Diff-Case"),
		Method:  r.Method,
		Path:    r.URL.Path,
		Query:   r.URL.RawQuery,
		Host:    r.Host,
		BodyLen: len(body),
	}
	rd.Route = routeOf(r.Method, r.URL.Path, r)
	rd.LooseRoute = looseRouteOf(r.Method, r.URL.Path, r)
	rd.Instances = r.Header.Values("Bluemix-Instance")
	raw := r.Header.Get("Bluemix-Instance")
	if id, ok := parseUUID(raw); ok {
		rd.Instance, rd.InstanceOK = id, true
	} else {
		rd.Instance = raw
	}
	rd.Create = readCreate(body)
	rd.Action = readAction(body)
	rd.PolicyPut = readPolicy(body)
	switch bodyKind(rd.Route) {
	case "create":
		rd.Root, rd.Import, rd.Token, rd.BodyOK = rd.Create.Root, rd.Create.Import, rd.Create.Token, rd.Create.OK
	case "action":
		rd.Import, rd.Token, rd.BodyOK = rd.Action.Import, rd.Action.Token, rd.Action.OK
	case "policy":
		rd.Policy, rd.BodyOK = rd.PolicyPut.Types, rd.PolicyPut.OK
	default:
		rd.BodyOK = true
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Go-Oracle", "1")
	enc := json.NewEncoder(w)
	_ = enc.Encode(rd)
}

func bodyKind(route string) string {
	switch route {
	case "key_create", "key_create_with_policy_overrides":
		return "create"
	case "instance_policies_put":
		return "policy"
	case "key_wrap", "key_unwrap", "key_rewrap", "key_rotate", "key_restore", "key_enable",
		"key_disable", "key_set_for_deletion", "key_unset_for_deletion", "key_sync":
		return "action"
	}
	return ""
}

func readCreate(body []byte) createReading {
	var c keyCreate
	if err := json.Unmarshal(body, &c); err != nil {
		return createReading{}
	}
	rd := createReading{OK: true, Resources: len(c.Resources)}
	if len(c.Resources) > 0 {
		k := c.Resources[0]
		rd.Root = k.Extractable == nil || !*k.Extractable
		rd.Import = k.Payload != ""
		rd.Token = k.EncryptedNonce != "" && k.IV != ""
		rd.B64OK = b64(k.Payload) && b64(k.EncryptedNonce) && b64(k.IV)
	}
	return rd
}

func readAction(body []byte) actionReading {
	if strings.TrimSpace(string(body)) == "" {
		// No body: the KMS rotates with generated material (or refuses unwrap: NO_BODY_ERR).
		return actionReading{OK: true, B64OK: true}
	}
	var a keyAction
	if err := json.Unmarshal(body, &a); err != nil {
		return actionReading{}
	}
	return actionReading{
		OK:     true,
		Import: a.Payload != "",
		Token:  a.EncryptedNonce != "" && a.IV != "",
		B64OK:  b64(a.Payload) && b64(a.EncryptedNonce) && b64(a.IV) && b64(a.Plaintext) && b64(a.Ciphertext),
	}
}

func readPolicy(body []byte) policyReading {
	var p policyPut
	if err := json.Unmarshal(body, &p); err != nil {
		return policyReading{}
	}
	rd := policyReading{OK: true, Types: []string{}}
	for _, res := range p.Resources {
		rd.Types = append(rd.Types, res.PolicyType)
	}
	return rd
}

func b64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

// cleanPath is gorilla/mux's: path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// routeOf is what a gorilla/mux-style router on the decoded path executes: a path that
// cleaning changes is redirected (301 to the clean path), never executed.
func routeOf(method, p string, r *http.Request) string {
	if cleanPath(p) != p {
		return "redirect"
	}
	return match(method, p, r)
}

// looseRouteOf is what a tolerant router would execute: the clean path without a trailing
// slash (where a followed redirect, or StrictSlash, would take the request).
func looseRouteOf(method, p string, r *http.Request) string {
	c := cleanPath(p)
	if len(c) > 1 {
		c = strings.TrimSuffix(c, "/")
	}
	return match(method, c, r)
}

var actions = map[string]string{
	"wrap":                "key_wrap",
	"unwrap":              "key_unwrap",
	"rewrap":              "key_rewrap",
	"rotate":              "key_rotate",
	"enable":              "key_enable",
	"disable":             "key_disable",
	"setKeyForDeletion":   "key_set_for_deletion",
	"unsetKeyForDeletion": "key_unset_for_deletion",
	"sync":                "key_sync",
	"restore":             "key_restore",
}

func action(name string) string {
	if r, ok := actions[name]; ok {
		return r
	}
	return "other"
}

// match routes an exact path; the labels are kmsgate's Route::as_str.
func match(method, p string, r *http.Request) string {
	if !strings.HasPrefix(p, "/api/v2/") {
		return "other"
	}
	seg := strings.Split(p[len("/api/v2/"):], "/")
	for _, s := range seg {
		if s == "" {
			return "other" // {var} patterns match [^/]+; literal segments are never empty
		}
	}
	n := len(seg)
	switch {
	case n == 1 && seg[0] == "keys":
		switch method {
		case "POST":
			return "key_create"
		case "GET", "HEAD":
			return "key_list"
		}
	case n == 1 && seg[0] == "keys_with_policy_overrides" && method == "POST":
		return "key_create_with_policy_overrides"
	case n == 2 && seg[0] == "keys" && seg[1] == "registrations":
		return "registrations"
	case n == 2 && seg[0] == "keys":
		switch method {
		case "GET":
			return "key_get"
		case "PATCH":
			return "key_patch"
		case "DELETE":
			return "key_delete"
		case "POST":
			a := r.URL.Query().Get("action")
			if a == "" {
				return "other"
			}
			return action(a)
		}
	case n == 3 && seg[0] == "keys":
		switch {
		case method == "GET" && seg[2] == "metadata":
			return "key_metadata"
		case method == "DELETE" && seg[2] == "purge":
			return "key_purge"
		case method == "POST" && seg[2] == "restore":
			return "key_restore"
		case method == "GET" && seg[2] == "versions":
			return "key_versions"
		case seg[2] == "policies":
			return "key_policies"
		case seg[2] == "registrations":
			return "registrations"
		}
	case n == 4 && seg[0] == "keys" && seg[2] == "actions" && method == "POST":
		return action(seg[3])
	case n == 4 && seg[0] == "keys" && seg[2] == "aliases":
		return "key_aliases"
	case n == 2 && seg[0] == "instance" && seg[1] == "policies":
		switch method {
		case "GET":
			return "instance_policies_get"
		case "PUT":
			return "instance_policies_put"
		}
	case n == 2 && seg[0] == "instance" && seg[1] == "allowed_ip_port" && method == "GET":
		return "allowed_ip_port"
	case n == 1 && seg[0] == "import_token":
		return "import_token"
	case seg[0] == "key_rings" && n <= 2:
		return "key_rings"
	case seg[0] == "kmip_adapters":
		return "kmip"
	}
	return "other"
}

// parseUUID accepts what github.com/google/uuid.Parse accepts (36 hyphenated, 38 with any
// first and last character — uuid.Parse does not check the braces —, 45 with a urn:uuid:
// prefix in any case, 32 hex) and returns the canonical lowercase hyphenated form.
func parseUUID(s string) (string, bool) {
	var u [16]byte
	switch len(s) {
	case 36:
	case 36 + 9:
		if !strings.EqualFold(s[:9], "urn:uuid:") {
			return "", false
		}
		s = s[9:]
	case 36 + 2:
		s = s[1:]
	case 32:
		for i := range u {
			v, ok := xtob(s[i*2], s[i*2+1])
			if !ok {
				return "", false
			}
			u[i] = v
		}
		return format(u), true
	default:
		return "", false
	}
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	for i, x := range [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34} {
		v, ok := xtob(s[x], s[x+1])
		if !ok {
			return "", false
		}
		u[i] = v
	}
	return format(u), true
}

func xtob(a, b byte) (byte, bool) {
	h, ok1 := unhex(a)
	l, ok2 := unhex(b)
	return h<<4 | l, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func format(u [16]byte) string {
	const hexd = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, v := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexd[v>>4], hexd[v&15]
		j += 2
	}
	return string(b[:])
}
