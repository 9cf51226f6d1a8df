package main

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// phone fills each # of tmpl with a random digit until the result is a
// valid number for region (libphonenumber metadata), so a planted phone is
// a real-shaped number, not just digits.
func (g *gen) phone(tmpl, region string) string {
	for range 10000 {
		var b strings.Builder
		for _, c := range tmpl {
			if c == '#' {
				b.WriteByte(digitsSet[g.r.IntN(10)])
			} else {
				b.WriteRune(c)
			}
		}
		s := b.String()
		if n, err := phonenumbers.Parse(s, region); err == nil && phonenumbers.IsValidNumber(n) {
			return s
		}
	}
	panic("no valid phone number for " + tmpl)
}

type corpusFile struct {
	name  string
	build func(g *gen) string
}

var corpusFiles = []corpusFile{
	{"src/payments.go", func(g *gen) string {
		return fmt.Sprintf(`// Package payments charges customers through Stripe.
//
// Maintainer: %s (on-call: %s)
package payments

import (
	"database/sql"
	"fmt"
	"os"
)

// stripeKey is the live key. TODO(%s): move to the vault before release!
const stripeKey = "%s"

// placeholder shown in the README; not a key.
const exampleKey = "sk_live_YOUR_API_KEY"

const (
	apiVersion = "2024-06-20"
	buildSHA   = "%s"
	requestID  = "%s"
)

var dbPassword = "%s"

// testCards are numbers that must be rejected (they fail Luhn).
var testCards = []string{"%s", "%s"}

func dsn() string {
	return fmt.Sprintf("postgres://billing:%%s@db.internal:5432/billing?sslmode=require", dbPassword)
}

func open() (*sql.DB, error) {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return sql.Open("pgx", v)
	}
	// Local dev: postgres://postgres:postgres@localhost:5432/dev
	return sql.Open("pgx", dsn())
}

// Refund refunds order ORD-2024-%06d and friends; idempotency key %s.
func Refund(order string, cents int64) error {
	_ = stripeKey
	_ = exampleKey
	return nil
}
`, g.E("priya.raman@northwind-labs.com"), g.P(g.phone("+1 (415) ###-####", "US")), "priya",
			g.S(g.stripe("sk")), g.sha1(), g.uuid(), g.S(g.password(22)),
			g.badCard("4", " "), g.badCard("55", ""), g.r.IntN(999999), g.uuid())
	}},

	{"src/ingest.py", func(g *gen) string {
		mongoPw := g.password(18)
		return fmt.Sprintf(`"""Nightly ingest: pulls exports from S3 and loads them into Mongo."""
import os
import boto3
import openai
from pymongo import MongoClient

__version__ = "3.14.2"

# FIXME: hard-coded while debugging, rotate after!
s3 = boto3.client(
    "s3",
    region_name="eu-west-1",
    aws_access_key_id="%s",
    aws_secret_access_key="%s",
)

# The AWS docs example key, used in unit tests only:
DOC_KEY = "AKIAIOSFODNN7EXAMPLE"

client = openai.OpenAI(api_key="%s")
PLACEHOLDER = os.environ.get("OPENAI_API_KEY", "sk-proj-YOUR_API_KEY")

mongo = MongoClient("mongodb+srv://ingest:%s@cluster0.x7k2p.mongodb.net/prod?retryWrites=true")

SLACK_WEBHOOK = "%s"

FIXTURE = {
    "customer_id": "%s",
    "name": "Daniel Okafor",
    "email": "%s",
    "ssn": "%s",
    "phone": "%s",
    "created": "2024-03-11T08:15:42Z",
    "checksum": "%s",
}


def run(batch_size=500):
    api_secret = "%s"
    for obj in s3.list_objects_v2(Bucket="exports-%s")["Contents"]:
        print(obj["Key"], obj["ETag"])
`, g.S(g.awsKeyID("ASIA")), g.S(g.awsSecret()), g.S(g.openai()), g.S(mongoPw), g.S(g.slackHook()),
			g.uuid(), g.E("d.okafor@fastmail.com"), g.N(g.ssn("-")), g.P(g.phone("+44 20 7### ####", "GB")),
			g.sha256(), g.S(g.password(32)), g.pick(lowerAlnum, 8))
	}},

	{"src/client.js", func(g *gen) string {
		return fmt.Sprintf(`// Thin wrapper around the Anthropic and Slack APIs.
import Anthropic from "@anthropic-ai/sdk";
import { WebClient } from "@slack/web-api@7.3.1";

const anthropic = new Anthropic({ apiKey: process.env.ANTHROPIC_API_KEY ?? "%s" });
const slack = new WebClient("%s");

// demo token for the docs site, long expired
const DEMO_JWT = "%s";

const SESSION_ID = "%s"; // not a secret
const CACHE_KEY = "v2:%s";
const EXAMPLE = "sk-ant-api03-xxxxxxxxxxxxxxxxxxxx";

export async function summarize(text) {
  const msg = await anthropic.messages.create({
    model: "claude-sonnet-4-5",
    max_tokens: 1024,
    messages: [{ role: "user", content: text }],
  });
  await slack.chat.postMessage({ channel: "C0%s", text: msg.content[0].text });
  return { id: msg.id, at: 1715512345123, build: "%s" };
}
`, g.S(g.anthropic()), g.S(g.xoxb()), g.S(g.jwt(`{"sub":"demo","iat":1700000000}`)),
			g.uuid(), g.sha256(), g.pick(alphaUpper+digitsSet, 8), g.sha1()[:7])
	}},

	{"config/app.yaml", func(g *gen) string {
		return fmt.Sprintf(`# app.yaml — production overrides
service:
  name: orders-api
  version: 2.31.0
  image: ghcr.io/northwind/orders-api@sha256:%s
  replicas: 3
database:
  url: postgres://orders:%s@orders-db.prod.internal:5432/orders
  password: %s
  pool: 20
cache:
  redis: redis://cache.internal:6379/0
  listen: 10.20.0.15:6379
gitlab:
  token: %s
  project_id: 48211907
billing:
  payout_iban: "%s"
  contact: %s
  api_key: YOUR_API_KEY
  example_key: "<your-key-here>"
tls:
  key: |
%s
observability:
  trace_id: %s
  sample_rate: 0.25
  started: 2024-11-02T17:45:09.331Z
`, g.sha256(), g.S(g.password(24)), g.S(g.password(20)), g.S(g.glpat()),
			g.I(iban("DE", g.pick(digitsSet, 18), true)), g.E("finance@northwind-labs.com"),
			"    "+g.S(strings.TrimPrefix(indent(g.pem("EC", 121), "    "), "    ")), g.pick(hexSet, 32))
	}},

	{"config/settings.json", func(g *gen) string {
		return fmt.Sprintf(`{
  "name": "web-frontend",
  "version": "5.2.0-rc.1",
  "build": { "commit": "%s", "timestamp": 1717430400 },
  "registry": { "url": "https://registry.npmjs.org/", "token": "%s" },
  "upstreams": ["%s", "127.0.0.1:8080", "192.168.1.20:3000", "[::1]:9000"],
  "ipv6_egress": "%s",
  "support": { "email": "%s", "phone": "%s" },
  "feature_flags": { "checkout_v2": true, "rollout": 0.15 },
  "uuid": "%s",
  "placeholder_token": "REPLACE_ME"
}
`, g.sha1(), g.S(g.npm()), g.A(g.publicIPv4()), g.A(g.publicIPv6()),
			g.E("help@brightcart.shop"), g.P(g.phone("+49 30 ########", "DE")), g.uuid())
	}},

	{"config/.env", func(g *gen) string {
		return fmt.Sprintf(`# .env for local runs — DO NOT COMMIT (it was committed)
APP_ENV=staging
PORT=8080
AWS_ACCESS_KEY_ID=%s
AWS_SECRET_ACCESS_KEY=%s
AWS_REGION=us-east-1
DATABASE_URL=mysql://app:%s@10.0.3.12:3306/app
SECRET_KEY=%s
STRIPE_RESTRICTED_KEY=%s
SLACK_WEBHOOK_URL=%s
CUSTOS_API_KEY=%s
SENTRY_RELEASE=%s
OPENAI_API_KEY=YOUR_API_KEY
ADMIN_EMAIL=%s
MAX_UPLOAD_MB=25
`, g.S(g.awsKeyID("AKIA")), g.S(g.awsSecret()), g.S(g.password(16)), g.S(g.password(40)),
			g.S(g.stripe("rk")), g.S(g.slackHook()), g.S(g.custos()), g.sha1(), g.E("ops-admin@kestrel-systems.io"))
	}},

	{"shell/.bash_history", func(g *gen) string {
		return fmt.Sprintf(`cd ~/src/orders-api
git pull --rebase
export GITHUB_TOKEN=%s
gh pr list --state open
git clone https://oauth2:%s@gitlab.com/northwind/infra.git
ls -la
docker run --rm -p 5432:5432 -e POSTGRES_PASSWORD=postgres postgres:16.3
mysql -h 10.0.3.12 -u root -p'%s' app
twine upload dist/* -u __token__ -p %s
export CUSTOS_API_KEY=%s
custos run -- make deploy
curl -s https://ifconfig.me  # -> %s
ssh deploy@%s
git log --oneline -3
git show %s
kubectl -n prod rollout status deploy/orders-api
history | tail -n 20
`, g.S(g.ghp()), g.S(g.glpat()), g.S(g.password(14)), g.S(g.pypi()), g.S(g.custos()),
			g.A(g.publicIPv4()), g.A(g.publicIPv4()), g.sha1())
	}},

	{"logs/server.log", func(g *gen) string {
		var b strings.Builder
		ts := 1715500000
		line := func(format string, a ...any) {
			ts += 1 + g.r.IntN(40)
			fmt.Fprintf(&b, "2024-05-12T%02d:%02d:%02d.%03dZ ", (ts/3600)%24, (ts/60)%60, ts%60, g.r.IntN(1000))
			fmt.Fprintf(&b, format+"\n", a...)
		}
		for range 6 {
			line("INFO  http request_id=%s method=GET path=/healthz status=200 dur=%dms remote=10.0.%d.%d", g.uuid(), g.r.IntN(9), g.r.IntN(255), 1+g.r.IntN(254))
		}
		line("INFO  http request_id=%s method=POST path=/v1/login status=200 remote=%s user=%s", g.uuid(), g.A(g.publicIPv4()), g.E("marco.bellini@libero.it"))
		line("DEBUG auth header=\"Authorization: Bearer %s\"", g.S(g.jwt(`{"sub":"user_8812","role":"admin","exp":1715600000}`)))
		line("WARN  payments order=ORD-2024-%06d card=%s amount=129.00 EUR msg=\"card declined\"", g.r.IntN(999999), g.C(g.card("4", 16, " ", []int{4, 4, 4, 4})))
		line("INFO  payments order=ORD-2024-%06d card_last4=%04d amount=89.50 EUR", g.r.IntN(999999), g.r.IntN(10000))
		line("INFO  http request_id=%s method=GET path=/v1/orders/%d status=200 remote=%s", g.uuid(), 10000000+g.r.IntN(9000000), g.A(g.publicIPv6()))
		line("ERROR kyc verification failed for ssn=%s phone=%s", g.N(g.ssn("-")), g.P(g.phone("(212) ###-####", "US")))
		line("INFO  build version=1.42.7 commit=%s go=go1.26.8", g.sha1())
		line("INFO  cdn purge etag=\"%s\" bytes=48213", g.pick(hexSet, 32))
		line("INFO  mailer sent template=receipt to=%s", g.E("anna.schmidt@posteo.de"))
		line("WARN  payments refund to iban=%s order=ORD-2024-%06d", g.I(iban("NL", "ABNA"+g.pick(digitsSet, 10), false)), g.r.IntN(999999))
		line("INFO  http request_id=%s method=GET path=/static/app.%s.js status=304 remote=172.17.0.1", g.uuid(), g.pick(hexSet, 8))
		line("INFO  scheduler job=reconcile next_run=1715600000 interval=3600s")
		for range 4 {
			line("INFO  http request_id=%s method=GET path=/metrics status=200 remote=127.0.0.1", g.uuid())
		}
		return b.String()
	}},

	{"chat/transcript.md", func(g *gen) string {
		return fmt.Sprintf(`# Session log: agent pairing, 2024-06-03

**developer:** The deploy to staging fails with 401 from GitHub. Here is my token, can you check what's wrong? %s

**agent:** I can't verify tokens, but the 401 usually means the token lacks the `+"`contents:read`"+` scope. Fine-grained tokens start with `+"`github_pat_`"+`; yours looks like one. Please rotate it, since it is now in this chat.

**developer:** ok. Also the Anthropic key in CI is %s, and the OpenAI one %s. Are they loaded?

**agent:** They are read from env vars `+"`ANTHROPIC_API_KEY`"+` and `+"`OPENAI_API_KEY`"+`; the CI log shows them masked as `+"`***`"+`, so yes.

**developer:** The customer who reported the bug is %s, phone %s, card on file %s. She was charged twice for order ORD-2024-%06d.

**agent:** I won't need the card number; the order id and the payment intent (pi_%s) are enough to find the duplicate charge.

**developer:** Refund goes to %s. Her SSN came through the KYC form too: %s. Whatever. Here is the custos key for the refund job: %s

**developer:** and the old deploy key, in case:

`+"```"+`
%s
`+"```"+`

**agent:** Thanks. I ran `+"`git bisect`"+`; the first bad commit is %s (v2.31.0, tagged 2024-05-28). The fix is in PR #4127.

**developer:** Ping me on %s or at %s if it breaks again. My server is %s.
`, g.S(g.githubPAT()), g.S(g.anthropic()), g.S(g.openai()),
			g.E("lena.fischer@gmx.de"), g.P(g.phone("+49 151 ########", "DE")), g.C(g.card("51", 16, "-", []int{4, 4, 4, 4})),
			g.r.IntN(999999), g.pick(alnumSet, 24),
			g.I(iban("GB", "NWBK"+g.pick(digitsSet, 14), true)), g.N(g.ssn("-")), g.S(g.custos()),
			g.S(g.pem("OPENSSH", 290)), g.sha1(),
			g.P(g.phone("+33 6 ## ## ## ##", "FR")), g.E("tom.becker@kestrel-systems.io"), g.A(g.publicIPv4()))
	}},

	{"ci/build.log", func(g *gen) string {
		return fmt.Sprintf(`2024-06-03T09:12:01.0042137Z ##[group]Run actions/checkout@v4
2024-06-03T09:12:01.0043120Z with:
2024-06-03T09:12:01.0043511Z   repository: northwind/orders-api
2024-06-03T09:12:01.0043870Z   token: ***
2024-06-03T09:12:01.0044201Z   ref: refs/heads/main
2024-06-03T09:12:02.3341002Z Syncing repository: northwind/orders-api
2024-06-03T09:12:02.9120044Z [command]/usr/bin/git remote add origin https://x-access-token:%s@github.com/northwind/orders-api
2024-06-03T09:12:03.5100201Z HEAD is now at %s Merge pull request #4127 from northwind/fix-double-charge
2024-06-03T09:12:03.5123310Z Author: Tom Becker <%s>
2024-06-03T09:12:03.5123310Z Co-authored-by: dependabot[bot] <49699333+dependabot[bot]@users.noreply.github.com>
2024-06-03T09:12:04.0010020Z ##[endgroup]
2024-06-03T09:12:04.1200310Z ##[group]Run npm ci
2024-06-03T09:12:04.1201010Z echo "//registry.npmjs.org/:_authToken=%s" > ~/.npmrc
2024-06-03T09:12:19.8834012Z added 1214 packages, and audited 1215 packages in 15s
2024-06-03T09:12:19.8835510Z found 0 vulnerabilities
2024-06-03T09:12:20.0120133Z ##[endgroup]
2024-06-03T09:12:20.1002311Z ##[group]Run go test ./...
2024-06-03T09:12:41.2201010Z ok  	github.com/northwind/orders-api/payments	1.204s
2024-06-03T09:12:41.2201570Z ok  	github.com/northwind/orders-api/store	3.881s
2024-06-03T09:12:41.2202001Z --- FAIL: TestRefund (0.02s)
2024-06-03T09:12:41.2202330Z     refund_test.go:88: POST https://api.custos.example/v1/secrets/access: 401 (key %s)
2024-06-03T09:12:41.2203020Z FAIL	github.com/northwind/orders-api/refund	0.512s
2024-06-03T09:12:41.9900210Z ##[endgroup]
2024-06-03T09:12:42.0000110Z ##[group]Run docker/build-push-action@v5
2024-06-03T09:12:58.1201101Z #12 writing image sha256:%s done
2024-06-03T09:12:58.1202310Z #12 naming to ghcr.io/northwind/orders-api:2.31.1 done
2024-06-03T09:12:58.4402010Z digest: sha256:%s size: 2417
2024-06-03T09:12:58.5010022Z notify: posting to slack channel #deploys via bot token %s
2024-06-03T09:12:58.9903101Z ##[endgroup]
2024-06-03T09:12:59.0100201Z Cleaning up orphan processes
`, g.S(g.ghp()), g.sha1()[:7], g.E("tom.becker@northwind-labs.com"), g.S(g.npm()), g.S(g.custos()),
			g.sha256(), g.sha256(), g.S(g.xoxb()))
	}},

	{"deps/package-lock.json", func(g *gen) string {
		var b strings.Builder
		b.WriteString("{\n  \"name\": \"web-frontend\",\n  \"version\": \"5.2.0\",\n  \"lockfileVersion\": 3,\n  \"requires\": true,\n  \"packages\": {\n")
		pkgs := []string{"react", "react-dom", "scheduler", "loose-envify", "js-tokens", "@babel/runtime", "regenerator-runtime", "zod", "@types/node", "undici-types", "typescript", "esbuild"}
		for i, p := range pkgs {
			base := p[strings.LastIndex(p, "/")+1:]
			v := fmt.Sprintf("%d.%d.%d", g.r.IntN(20), g.r.IntN(30), g.r.IntN(15))
			fmt.Fprintf(&b, "    \"node_modules/%s\": {\n      \"version\": \"%s\",\n      \"resolved\": \"https://registry.npmjs.org/%s/-/%s-%s.tgz\",\n      \"integrity\": \"%s\"", p, v, p, base, v, g.integrity())
			if i%3 == 0 {
				fmt.Fprintf(&b, ",\n      \"license\": \"MIT\",\n      \"engines\": { \"node\": \">=18.17.0\" }")
			}
			if i < len(pkgs)-1 {
				b.WriteString("\n    },\n")
			} else {
				b.WriteString("\n    }\n")
			}
		}
		b.WriteString("  }\n}\n")
		return b.String()
	}},

	{"deps/go.sum", func(g *gen) string {
		var b strings.Builder
		mods := []string{"github.com/google/uuid v1.6.0", "github.com/jackc/pgx/v5 v5.12.0", "github.com/redis/go-redis/v9 v9.23.0", "golang.org/x/crypto v0.58.0", "golang.org/x/net v0.60.0", "golang.org/x/sys v0.49.0", "golang.org/x/text v0.43.0", "google.golang.org/protobuf v1.36.12", "modernc.org/sqlite v1.61.1", "github.com/prometheus/client_golang v1.25.0"}
		for _, m := range mods {
			fmt.Fprintf(&b, "%s %s\n", m, g.h1())
			parts := strings.SplitN(m, " ", 2)
			fmt.Fprintf(&b, "%s %s/go.mod %s\n", parts[0], parts[1], g.h1())
		}
		return b.String()
	}},

	{"web/app.min.js", func(g *gen) string {
		var b strings.Builder
		b.WriteString(`/*! app v5.2.0 | (c) northwind | MIT */`)
		b.WriteString(`!function(){"use strict";var e={},t=function(n,r){return n+r};`)
		for i := range 40 {
			id := g.pick(alphaLower, 1) + g.pick(alnumSet, 1)
			switch i % 5 {
			case 0:
				fmt.Fprintf(&b, `var %s="%s";`, id, g.pick(alnumSet+"+/", 24+g.r.IntN(20)))
			case 1:
				fmt.Fprintf(&b, `function %s(n){return n.map(function(r){return r.%s|0}).filter(Boolean)}`, id, g.pick(alphaLower, 3))
			case 2:
				fmt.Fprintf(&b, `e["%s"]=%d;`, g.pick(hexSet, 12), g.r.IntN(1<<30))
			case 3:
				fmt.Fprintf(&b, `var %s={chunk:"static/js/%d.%s.chunk.js",v:"%d.%d.%d"};`, id, g.r.IntN(900), g.pick(hexSet, 8), g.r.IntN(9), g.r.IntN(20), g.r.IntN(20))
			case 4:
				fmt.Fprintf(&b, `var %s=new RegExp("^[a-z0-9]{%d}$");`, id, 8+g.r.IntN(30))
			}
			if i == 21 {
				fmt.Fprintf(&b, `var cfg={analytics:"UA-%d-1",token:"%s",api:"https://api.brightcart.shop/v3"};`, 10000000+g.r.IntN(9000000), g.S(g.jwt(`{"aud":"web","scope":"read"}`)))
			}
		}
		b.WriteString("}();\n//# sourceMappingURL=app.min.js.map\n")
		return b.String()
	}},

	{"web/index.html", func(g *gen) string {
		return fmt.Sprintf(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>BrightCart — checkout</title>
<link rel="stylesheet" href="/static/css/main.%s.css" integrity="%s" crossorigin="anonymous">
</head>
<body>
<img alt="logo" width="12" height="12" src="data:image/png;base64,%s">
<p>Questions? Write to <a href="mailto:%s">customer support</a> or call %s.</p>
<p>Order reference: ORD-2024-%06d · Session %s</p>
<footer>v5.2.0 · build %s · 2024-06-03 09:12 UTC</footer>
</body>
</html>
`, g.pick(hexSet, 8), g.integrity(), g.pngBase64(),
			g.E("orders@brightcart.shop"), g.P(g.phone("+1 312 ### ####", "US")), g.r.IntN(999999), g.uuid(), g.sha1()[:12])
	}},

	{"assets/icon.png.b64", func(g *gen) string {
		var b strings.Builder
		s := g.pngBase64()
		for len(s) > 76 {
			b.WriteString(s[:76] + "\n")
			s = s[76:]
		}
		return b.String() + s + "\n"
	}},

	{"keys/deploy_key.pem", func(g *gen) string {
		return g.S(g.pem("RSA", 1190)) + "\n"
	}},

	{"data/customers.csv", func(g *gen) string {
		var b strings.Builder
		b.WriteString("id,name,email,phone,country,iban,card,ssn,signup_ip,created_at\n")
		rows := []struct {
			name, email, phone, region, country string
			iban                                func() string
			card                                func() string
			ssn                                 bool
		}{
			{"Sofia Marquez", "sofia.marquez+shop@gmail.com", "+34 6## ### ###", "ES", "ES", func() string { return iban("ES", g.pick(digitsSet, 20), false) }, func() string { return g.card("37", 15, " ", []int{4, 6, 5}) }, false},
			{"James O'Neill", "jim.oneill@outlook.com", "617.###.####", "US", "US", nil, func() string { return g.card("6011", 16, "", nil) }, true},
			{"Aiko Tanaka", "aiko.tanaka@docomo.ne.jp", "+81 3-####-####", "JP", "JP", nil, func() string { return g.card("4", 16, "", nil) }, false},
			{"Rahul Verma", "rahul.verma@protonmail.com", "+91 98### #####", "IN", "IN", nil, nil, false},
			{"Chloé Dubois", "chloe.dubois@orange.fr", "+33 1 ## ## ## ##", "FR", "FR", func() string {
				return iban("FR", g.pick(digitsSet, 10)+g.pick(alphaUpper+digitsSet, 11)+g.pick(digitsSet, 2), true)
			}, nil, false},
			{"Liam Walker", "liam.walker@bigpond.com.au", "+61 4## ### ###", "AU", "AU", nil, func() string { return g.card("53", 16, " ", []int{4, 4, 4, 4}) }, false},
			{"Mariana Costa", "mariana.costa@uol.com.br", "+55 11 9####-####", "BR", "BR", nil, nil, false},
		}
		for i, r := range rows {
			ib, cd, sn := "", "", ""
			if r.iban != nil {
				ib = g.I(r.iban())
			}
			if r.card != nil {
				cd = g.C(r.card())
			}
			if r.ssn {
				sn = g.N(g.ssn("-"))
			}
			fmt.Fprintf(&b, "%d,%s,%s,%s,%s,%s,%s,%s,%s,2024-0%d-1%dT10:0%d:00Z\n", 1001+i, r.name, g.E(r.email),
				g.P(g.phone(r.phone, r.region)), r.country, ib, cd, sn, g.A(g.publicIPv4()), 1+i, i, i)
		}
		fmt.Fprintf(&b, "1099,Test User,test@localhost,000-000-0000,US,,%s,,10.0.0.1,2024-01-01T00:00:00Z\n", g.badCard("4", ""))
		return b.String()
	}},
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
