package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vigil-fraud/vigil/engine"
)

const keysUsage = "usage: vigil keys generate --id ID --scopes score[,rules:read,labels,metrics,admin]\n"

func cmdKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return exitUsage
	}
	switch args[0] {
	case "generate":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "vigil keys: unknown command %q\n%s", args[0], keysUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "key id, shown in logs (required)")
	scopes := fs.String("scopes", "score", "comma-separated scopes: score, rules:read, labels, metrics, admin")
	if code := parseFlags(fs, args[1:], stderr); code >= 0 {
		return code
	}
	if *id == "" {
		fmt.Fprintln(stderr, "vigil keys generate: --id is required")
		return 2
	}
	if !engine.ValidKeyID(*id) {
		fmt.Fprintf(stderr, "vigil keys generate: --id %q: use letters, digits and . _ - @ / : (at most 64, starting with a letter or digit)\n", *id)
		return 2
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(engine.AllScopes, engine.Scope(s)) {
			fmt.Fprintf(stderr, "vigil keys generate: unknown scope %q\n", s)
			return 2
		}
		list = append(list, s)
	}
	secret, sha, err := engine.GenerateSecret()
	if err != nil {
		fmt.Fprintln(stderr, "vigil keys generate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "# secret (shown once; give it to the client, store it in a secret manager):\n# %s\n", secret)
	fmt.Fprintf(stdout, "# add to the keys file:\n  - id: %s\n    sha256: %s\n    scopes: [%s]\n", *id, sha, strings.Join(list, ", "))
	return 0
}
