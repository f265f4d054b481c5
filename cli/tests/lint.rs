//! `keyward lint` over a fixture repository built here (so no key-shaped
//! text is committed): every planted anti-pattern is reported at its line,
//! nothing on the clean files, no value is quoted, the exit status fails
//! CI, and the SARIF report validates against the SARIF 2.1.0 schema.
mod common;

use common::Keyward;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Deterministic random-looking text (xorshift), so the fixture needs no
/// committed secrets and reruns identically.
struct Noise(u64);

impl Noise {
    fn text(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                alphabet[(self.0 % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }
}

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// What the fixture plants: (file, line, rule id, a word the message has).
type Planted = BTreeSet<(String, usize, String)>;

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// The repository, and what a correct lint reports in it. Values that
/// must never appear in the report are returned too.
fn fixture(root: &Path, keyward: &Keyward) -> (Planted, Vec<String>) {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut planted = Planted::new();
    let mut plant = |path: &str, line: usize, rule: &str| {
        planted.insert((path.to_owned(), line, rule.to_owned()));
    };

    // A ConfigMap, then a Secret with values, in one file.
    let db_password = noise.text(16, ALNUM);
    write(
        root,
        "deploy/db.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db-config\ndata:\n  mode: primary\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ntype: Opaque\nstringData:\n  password: {db_password}\n"
        ),
    );
    plant("deploy/db.yaml", 9, "KW001");

    // A private key file, and one inside a JSON string.
    let body: Vec<String> = (0..6).map(|_| noise.text(64, BASE64)).collect();
    let begin = format!("-----BEGIN {}PRIVATE KEY-----", "RSA ");
    let end = format!("-----END {}PRIVATE KEY-----", "RSA ");
    write(
        root,
        "certs/tls.key",
        &format!("{begin}\n{}\n{end}\n", body.join("\n")),
    );
    plant("certs/tls.key", 1, "KW002");
    write(
        root,
        "terraform/sa.json",
        &format!(
            "{{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN {}PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n\"\n}}\n",
            "", body[0]
        ),
    );
    plant("terraform/sa.json", 3, "KW002");

    // An AWS credentials file and a .env.
    let aws_secret = noise.text(40, BASE64);
    write(
        root,
        "config/aws-credentials",
        &format!(
            "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {aws_secret}\n",
            noise.text(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ),
    );
    plant("config/aws-credentials", 3, "KW003");
    write(
        root,
        "app/.env",
        &format!("LOG_LEVEL=debug\nexport AWS_SECRET_ACCESS_KEY={aws_secret}\n"),
    );
    plant("app/.env", 2, "KW003");

    // A Deployment: two secrets in env (by name, by shape), two clean entries.
    let session_seed = noise.text(32, ALNUM);
    write(
        root,
        "deploy/app.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: shop\n          image: shop@sha256:{}\n          env:\n            - name: LOG_LEVEL\n              value: info\n            - name: DB_PASSWORD\n              value: {db_password}\n            - name: SESSION_SEED\n              value: \"{session_seed}\"\n            - name: API_TOKEN\n              valueFrom:\n                secretKeyRef: {{name: api, key: token}}\n            - name: DB_HOST\n              value: postgres-primary-0.postgres.shop.svc.cluster.local\n",
            noise.text(64, HEX)
        ),
    );
    plant("deploy/app.yaml", 14, "KW004");
    plant("deploy/app.yaml", 16, "KW004");

    // Helm values: two secrets, and references, digests, placeholders and
    // a value Keyward sealed, all clean.
    let client_secret = noise.text(24, b"abcdefghijklmnopqrstuvwxyz");
    let sealed = keyward
        .run(&[
            "seal",
            "-n",
            "shop",
            "--name",
            "shop",
            "--key",
            "app",
            "--raw",
            "--from-literal",
            "token=from-keyward",
        ])
        .ok()
        .stdout_text();
    write(
        root,
        "chart/values.yaml",
        &format!(
            "image:\n  digest: sha256:{}\npostgresql:\n  auth:\n    existingSecret: db-creds\n    password: hunter2-is-not-a-password\n    username: shop\noauth:\n  clientSecret: {client_secret}\n  keyringSecret: shop-keyring\n  tokenFile: /var/run/secrets/token\napi:\n  token: \"{{{{ .Values.global.token }}}}\"\n  sealedToken: {sealed}\n",
            noise.text(64, HEX)
        ),
    );
    plant("chart/values.yaml", 6, "KW005");
    plant("chart/values.yaml", 9, "KW005");

    // Configuration files: a .env and Terraform variables with secrets, a
    // Compose file with one in its environment map; an example .env with
    // empty and placeholder values and a list-form environment are clean.
    write(
        root,
        "app/.env.production",
        &format!(
            "# production\nDB_PASSWORD=\"{}\"\nLOG_LEVEL=warn\n",
            noise.text(18, ALNUM)
        ),
    );
    plant("app/.env.production", 2, "KW006");
    write(
        root,
        "infra/prod.tfvars",
        &format!(
            "region = \"eu-west-1\"\nadmin_password = \"{}\"\n",
            noise.text(18, ALNUM)
        ),
    );
    plant("infra/prod.tfvars", 2, "KW006");
    write(
        root,
        "docker-compose.yml",
        &format!(
            "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_USER: shop\n      POSTGRES_PASSWORD: {}\n  cache:\n    image: redis:7\n    environment:\n      - LOG_LEVEL=info\n      - REDIS_PASSWORD=${{REDIS_PASSWORD}}\n",
            noise.text(18, ALNUM)
        ),
    );
    plant("docker-compose.yml", 6, "KW004");
    write(
        root,
        "app/.env.example",
        "DB_PASSWORD=\nAPI_TOKEN=<your token>\nSESSION_KEY_FILE=/run/keys/session\n",
    );

    // JSON: an ECS task definition with a secret in its environment, a
    // Secret as `kubectl get -o json` prints it; a lock file's integrity
    // hashes and a JSON schema's patterns are clean.
    write(
        root,
        "ecs/task.json",
        &format!(
            "{{\n  \"family\": \"shop\",\n  \"containerDefinitions\": [{{\n    \"name\": \"shop\",\n    \"environment\": [\n      {{\"name\": \"LOG_LEVEL\", \"value\": \"info\"}},\n      {{\"name\": \"STRIPE_API_KEY\", \"value\": \"{}\"}}\n    ]\n  }}]\n}}\n",
            noise.text(24, ALNUM)
        ),
    );
    plant("ecs/task.json", 7, "KW004");
    write(
        root,
        "backup/db-secret.json",
        &format!(
            "{{\n    \"apiVersion\": \"v1\",\n    \"data\": {{\n        \"password\": \"{}\"\n    }},\n    \"kind\": \"Secret\",\n    \"metadata\": {{\"name\": \"db\", \"namespace\": \"shop\"}}\n}}\n",
            noise.text(24, BASE64)
        ),
    );
    plant("backup/db-secret.json", 6, "KW001");
    write(
        root,
        "web/package-lock.json",
        &format!(
            "{{\n  \"name\": \"web\",\n  \"packages\": {{\n    \"node_modules/left-pad\": {{\n      \"version\": \"1.3.0\",\n      \"integrity\": \"sha512-{}==\"\n    }}\n  }}\n}}\n",
            noise.text(86, BASE64)
        ),
    );

    // Clean: a SealedSecret, a Secret without values, a public key, docs
    // naming the patterns, a Helm template, an accepted test fixture, and
    // a key under .git (never scanned).
    let value_file = keyward.write("value.txt", db_password.as_bytes());
    let sealed_manifest =
        std::fs::read_to_string(keyward.seal_file("shop", "db", "password", &value_file)).unwrap();
    write(root, "deploy/db.sealedsecret.yaml", &sealed_manifest);
    write(
        root,
        "deploy/token.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sa-token\n  annotations: {kubernetes.io/service-account.name: shop}\ntype: kubernetes.io/service-account-token\n",
    );
    write(
        root,
        "certs/ca.pem",
        &format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            body[1]
        ),
    );
    write(
        root,
        "docs/security.md",
        "# Secrets\n\nNever commit a `-----BEGIN PRIVATE KEY-----` block, nor\n`aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}` with a real value.\nSet `password:` in values only through `existingSecret`.\n",
    );
    write(
        root,
        "chart/templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\nstringData:\n  password: {{ .Values.postgresql.auth.password | quote }}\n",
    );
    write(
        root,
        "test/fixture.yaml",
        &format!(
            "env:\n  # keyward-lint: ignore (a throw-away value for the test database)\n  - name: TEST_DB_PASSWORD\n    value: {}\n",
            noise.text(12, ALNUM)
        ),
    );
    write(
        root,
        ".git/config",
        &format!("[secret]\naws_secret_access_key = {aws_secret}\n"),
    );
    let never_shown = vec![
        db_password,
        aws_secret,
        session_seed,
        client_secret,
        body[0].clone(),
    ];
    (planted, never_shown)
}

fn reported(text: &str) -> Planted {
    text.lines()
        .filter(|l| !l.starts_with(' ') && l.contains(": KW"))
        .map(|l| {
            let mut parts = l.splitn(3, ':');
            let path = parts.next().unwrap().to_owned();
            let line = parts.next().unwrap().parse().unwrap();
            let rule = parts
                .next()
                .unwrap()
                .trim()
                .split(' ')
                .next()
                .unwrap()
                .to_owned();
            (path, line, rule)
        })
        .collect()
}

#[test]
fn every_planted_anti_pattern_is_reported_and_nothing_else() {
    let keyward = Keyward::new();
    let repo = tempfile::tempdir().unwrap();
    let (planted, never_shown) = fixture(repo.path(), &keyward);
    let run = keyward.run(&["lint", repo.path().to_str().unwrap()]);
    let report = run.stdout_text();
    assert_eq!(run.status, 1, "findings must fail CI: {}", run.stderr);
    let found = reported(&report);
    let missed: Vec<_> = planted.difference(&found).collect();
    let extra: Vec<_> = found.difference(&planted).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed {missed:?}, false positives {extra:?}\n{report}"
    );
    assert!(
        run.stderr
            .contains(&format!("{} finding(s)", planted.len())),
        "{}",
        run.stderr
    );
    for value in &never_shown {
        assert!(
            !report.contains(value.as_str()),
            "the report quotes a value"
        );
    }
    // Each finding says how to fix it.
    assert_eq!(
        report.matches("    fix: ").count(),
        planted.len(),
        "{report}"
    );
    assert!(
        report.contains("keyward seal -f deploy/db.yaml --key <ManagedKey> > db.sealedsecret.yaml")
    );
    assert!(
        report.contains("--from-literal DB_PASSWORD=<the value>"),
        "{report}"
    );
    println!("{report}");

    // Without the planted files, the same repository is clean: exit 0.
    for (path, _, _) in &planted {
        let _ = std::fs::remove_file(repo.path().join(path));
    }
    let clean = keyward.run(&["lint", repo.path().to_str().unwrap()]).ok();
    assert_eq!(clean.stdout_text(), "no findings\n");
}

#[test]
fn the_sarif_report_is_valid_sarif_2_1_0() {
    let keyward = Keyward::new();
    let repo = tempfile::tempdir().unwrap();
    let (planted, _) = fixture(repo.path(), &keyward);
    let out = keyward.path("lint.sarif");
    let run = keyward.run(&[
        "lint",
        repo.path().to_str().unwrap(),
        "--format",
        "sarif",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // One pattern in the published schema (`run.language`, which the
    // report does not use) has a stray `]`, which the meta-schema's regex
    // check refuses; it is corrected, nothing else is touched.
    let text = std::fs::read_to_string(sarif_schema()).unwrap().replace(
        r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#,
        r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#,
    );
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "not valid SARIF 2.1.0: {errors:#?}");
    let results = log["runs"][0]["results"].as_array().unwrap();
    let found: Planted = results
        .iter()
        .map(|r| {
            let location = &r["locations"][0]["physicalLocation"];
            (
                location["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                location["region"]["startLine"].as_u64().unwrap() as usize,
                r["ruleId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(found, planted);
    // And a file that is not a directory is a clear error.
    let error = keyward.run(&["lint", out.to_str().unwrap()]).user_error();
    assert!(error.contains("is not a directory"), "{error}");
}

/// The SARIF 2.1.0 schema (OASIS, final "rtm.5"), as Microsoft ships it in
/// the npm package @microsoft/jest-sarif; fetched once into the cache.
fn sarif_schema() -> PathBuf {
    let cache = std::env::var_os("KEYWARD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/keyward"))
        .join("sarif");
    let schema = cache.join("package/lib/schemas/sarif-2.1.0-rtm.5.json");
    if schema.exists() {
        return schema;
    }
    std::fs::create_dir_all(&cache).unwrap();
    let packed = Command::new("npm")
        .args(["pack", "@microsoft/jest-sarif@1.0.0-beta.0", "--silent"])
        .current_dir(&cache)
        .output()
        .expect("npm (Node 20) fetches the SARIF schema once");
    assert!(
        packed.status.success(),
        "npm pack failed: {}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let tarball = String::from_utf8_lossy(&packed.stdout).trim().to_owned();
    let unpacked = Command::new("tar")
        .args(["xzf", &tarball])
        .current_dir(&cache)
        .status()
        .unwrap();
    assert!(
        unpacked.success() && schema.exists(),
        "no schema in {tarball}"
    );
    schema
}

/// Keyward's own repository (charts, examples, e2e fixtures, docs, and
/// these tests) is clean: no false positives on a real repository.
#[test]
fn keywards_own_repository_is_clean() {
    let keyward = Keyward::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let run = keyward.run(&["lint", root.to_str().unwrap()]);
    assert_eq!(
        (run.status, run.stdout_text()),
        (0, "no findings\n".to_owned()),
        "{}",
        run.stderr
    );
}
