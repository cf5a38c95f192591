//! Plans rendered as SQL (`pdp_client::sql`) against a real PostgreSQL: for random policy
//! sets, subjects and a table of random resources, the rows the rendered `WHERE` clause
//! returns are exactly the resources the engine's `decide` allows; and end to end, a plan
//! from the real `pdp serve` through `PdpClient::plan` selects the rows `Check` allows.
//!
//! The test starts PostgreSQL itself (`initdb` and `postgres` from Debian's
//! `postgresql` package) in a temporary directory on a free loopback port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pdp_client::sql::{SqlTable, SqlWhere};
use pdp_client::{pb, PdpClient, PlanQuery};
use pdp_engine::{Plan, PlanRequest, PolicySet, Request, Resource, Subject};
use serde_json::{json, Value as Json};

mod common;

/// A PostgreSQL server in a temporary directory, stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Child,
    port: u16,
}

/// The directory of PostgreSQL's server binaries: Debian's PostgreSQL 15, else the newest
/// other Debian one, else what `pg_config` says.
fn bindir() -> PathBuf {
    let debian = Path::new("/usr/lib/postgresql");
    let preferred = debian.join("15/bin");
    if preferred.join("initdb").exists() {
        return preferred;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let configured = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    configured.unwrap_or_else(|| {
        panic!("PostgreSQL's initdb is neither under {}/*/bin nor in `pg_config --bindir`: install it (`apt-get install postgresql`); .ci/run does", debian.display())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `bin/name args`, as the `postgres` user when this process is root (`initdb` refuses
/// to run as root).
fn pg_command(bin: &Path, name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(name));
        c
    } else {
        Command::new(bin.join(name))
    }
}

impl Postgres {
    fn start() -> Postgres {
        let bin = bindir();
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(
                owned.success(),
                "chown of {} to postgres",
                dir.path().display()
            );
        }
        let data = dir.path().join("data");
        let init = pg_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-E",
                "UTF8",
                "--no-locale",
                "-A",
                "trust",
                "-U",
                "postgres",
                "-N",
            ])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        );
        let port = common::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = pg_command(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Postgres {
            dir,
            bin,
            child,
            port,
        }
    }

    /// A connection, retried while the server comes up.
    async fn connect(&self) -> tokio_postgres::Client {
        let config = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&config, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return client;
                }
                Err(e) => {
                    let log = std::fs::read_to_string(self.dir.path().join("postgres.log"))
                        .unwrap_or_default();
                    assert!(
                        Instant::now() < deadline,
                        "PostgreSQL did not start: {e}\n{log}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // `runuser` does not pass a kill on: stop the server itself.
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resources table: a row number, the id and the tags.
async fn create_table(db: &tokio_postgres::Client, rows: &[(i32, String, Option<Json>)]) {
    db.batch_execute(
        "DROP TABLE IF EXISTS resources; CREATE TABLE resources (n int PRIMARY KEY, id text NOT NULL, tags jsonb)",
    )
    .await
    .unwrap();
    for (n, id, tags) in rows {
        let tags = tags.as_ref().map(Json::to_string);
        db.execute(
            "INSERT INTO resources VALUES ($1, $2, $3::text::jsonb)",
            &[n, id, &tags],
        )
        .await
        .unwrap();
    }
}

/// The row numbers the clause selects.
async fn select(db: &tokio_postgres::Client, w: &SqlWhere) -> Result<BTreeSet<i32>, String> {
    let params: Vec<&str> = w.params.iter().map(|p| p.as_str()).collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let query = format!("SELECT n FROM resources WHERE {}", w.clause);
    let rows = db
        .query(&query, &refs)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0)).collect())
}

/// The engine's resource for a row: its tags but those with a JSON `null` value.
fn resource(id: &str, tags: Option<&Json>) -> Resource {
    let tags = tags
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str().into(), v.into())))
                .collect()
        })
        .unwrap_or_default();
    Resource {
        id: id.into(),
        tags,
    }
}

/// The engine's plan as the PDP answers it, read back by the client.
fn client_plan(plan: &Plan) -> pdp_client::Plan {
    let (kind, condition) = match plan {
        Plan::AlwaysAllowed => (pb::PlanKind::AlwaysAllowed, None),
        Plan::AlwaysDenied => (pb::PlanKind::AlwaysDenied, None),
        Plan::Conditional(e) => (
            pb::PlanKind::Conditional,
            Some(pdp_server::grpc::convert::resource_expr(e)),
        ),
    };
    pdp_client::Plan::from_response(&pb::PlanResourcesResponse {
        kind: kind as i32,
        condition,
        policy_revision: "r".into(),
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------
// Random sets, from small alphabets so that conditions and patterns hit often.

const TAG_KEYS: &[&str] = &["owner", "Owner", "OWNER", "env", "size", "flag", "7"];
const TAG_VALUES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "a*b",
    "a*bc",
    "prod",
    "prod-1",
    "Prod",
    "dev",
    "1",
    "01",
    "1.0",
    " 2 ",
    "2.5",
    "-0",
    "1e1",
    "10",
    "",
    "true",
    "TRUE",
    "false",
    "\u{212A}",
    "k",
    "K",
    "a%b",
    "a_b",
    r"x\y",
    "1e400",
    ".5",
    "5.",
    "+3",
    "nan",
    "inf",
    "1_0",
    "0x10",
    "\u{3000}4",
    "1e-400",
    "0.1",
    "0.10000000000000000001",
    "é",
];
const IDS: &[&str] = &[
    "doc:1",
    "doc:2",
    "doc:alice/1",
    "doc:a*b/1",
    "doc:a%",
    "doc:a_b",
    "doc:aXb",
    r"doc:\x",
    "img:1",
    "doc:",
    "DOC:1",
    "doc:é",
    "doc:bobprod",
    "doc:alicedev",
    "doc:a%b_b",
    "doc:a_b_b",
];
const PATTERNS: &[&str] = &[
    "*",
    "doc:*",
    "doc:?",
    "doc:a?b",
    "doc:a%",
    r"doc:\*",
    "img:*",
    "doc:${aws:username}/*",
    "DOC:*",
    "doc:${aws:ResourceTag/owner}/*",
    "doc:${aws:ResourceTag/7, 'a%'}*",
    "doc:${aws:username}${aws:ResourceTag/env}",
    "${aws:ResourceTag/Owner, 'doc:2'}",
    "doc:${aws:ResourceTag/flag}_b",
];
const STRING_OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
];
const STRING_VALUES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "prod",
    "prod*",
    "a*b",
    "a?b",
    "*",
    "${aws:username}",
    "k",
    "K",
    "a%b",
    "a_b",
    r"x\y",
    "",
    "${aws:username}*",
    "?",
];
const NUMERIC_OPERATORS: &[&str] = &[
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
];
const NUMERIC_VALUES: &[&str] = &["1", "2", "2.5", "0", "-1", "10", "1e1", "0.1"];
const SUBJECTS: &[&str] = &["alice", "bob", "a*b", "Alice"];

fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

fn picks(rng: &mut fastrand::Rng, from: &[&str], most: usize) -> Json {
    let n = rng.usize(1..=most);
    let values: Vec<Json> = (0..n).map(|_| json!(pick(rng, from))).collect();
    match values.as_slice() {
        [one] => one.clone(),
        _ => Json::Array(values),
    }
}

/// One condition: operator (with a qualifier and `IfExists` now and then), a resource
/// tag key, values of the operator's kind.
fn condition(rng: &mut fastrand::Rng) -> (String, String, Json) {
    let (base, values) = match rng.u8(..10) {
        0..=4 => (pick(rng, STRING_OPERATORS), picks(rng, STRING_VALUES, 2)),
        5..=7 => (pick(rng, NUMERIC_OPERATORS), picks(rng, NUMERIC_VALUES, 2)),
        8 => ("Bool", picks(rng, &["true", "false"], 1)),
        _ => ("Null", picks(rng, &["true", "false"], 1)),
    };
    let mut operator = base.to_owned();
    if base != "Null" {
        match rng.u8(..10) {
            0 | 1 => operator = format!("ForAnyValue:{operator}"),
            2 | 3 => operator = format!("ForAllValues:{operator}"),
            _ => {}
        }
        if rng.u8(..4) == 0 {
            operator.push_str("IfExists");
        }
    }
    let key = if rng.u8(..8) == 0 {
        "aws:resourcetag/owner".to_owned()
    } else {
        format!("aws:ResourceTag/{}", pick(rng, TAG_KEYS))
    };
    (operator, key, values)
}

fn statement(rng: &mut fastrand::Rng) -> Json {
    let mut s = serde_json::Map::new();
    s.insert(
        "Effect".into(),
        json!(if rng.u8(..10) < 7 { "Allow" } else { "Deny" }),
    );
    s.insert(
        "Action".into(),
        json!(pick(rng, &["docs:Read", "docs:*", "docs:Write"])),
    );
    let patterns = picks(rng, PATTERNS, 2);
    let resource_key = if rng.u8(..10) == 0 {
        "NotResource"
    } else {
        "Resource"
    };
    s.insert(resource_key.into(), patterns);
    let mut conditions = serde_json::Map::new();
    for _ in 0..rng.usize(0..=2) {
        let (operator, key, values) = condition(rng);
        let entry = conditions
            .entry(operator)
            .or_insert_with(|| Json::Object(serde_json::Map::new()));
        if let Json::Object(m) = entry {
            m.insert(key, values);
        }
    }
    if !conditions.is_empty() {
        s.insert("Condition".into(), Json::Object(conditions));
    }
    Json::Object(s)
}

fn policy(rng: &mut fastrand::Rng) -> Json {
    let statements: Vec<Json> = (0..rng.usize(1..=4)).map(|_| statement(rng)).collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn random_rows(rng: &mut fastrand::Rng, n: i32) -> Vec<(i32, String, Option<Json>)> {
    (0..n)
        .map(|i| {
            let id = pick(rng, IDS).to_owned();
            let tags = match rng.u8(..20) {
                0 => None,
                _ => {
                    let mut m = serde_json::Map::new();
                    for key in TAG_KEYS {
                        match rng.u8(..10) {
                            0..=3 => {
                                m.insert((*key).into(), json!(pick(rng, TAG_VALUES)));
                            }
                            4 => {
                                m.insert((*key).into(), Json::Null);
                            }
                            _ => {}
                        }
                    }
                    Some(Json::Object(m))
                }
            };
            (i, id, tags)
        })
        .collect()
}

#[tokio::test]
async fn rendered_plans_select_exactly_the_rows_decide_allows() {
    let pg = Postgres::start();
    let db = pg.connect().await;
    let seed = std::env::var("PDP_SQL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let rows = random_rows(&mut rng, 200);
    create_table(&db, &rows).await;
    let resources: Vec<(i32, Resource)> = rows
        .iter()
        .map(|(n, id, tags)| (*n, resource(id, tags.as_ref())))
        .collect();

    let started = Instant::now();
    let (mut conditional, mut nonempty, mut templates) = (0, 0, 0);
    for case in 0..400 {
        let policies: Vec<Json> = (0..rng.usize(1..=2)).map(|_| policy(&mut rng)).collect();
        let mut builder = PolicySet::builder();
        let mut names = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            let name = format!("p{i}");
            builder = builder.policy_yaml(&name, &p.to_string());
            names.push(name);
        }
        let set = builder
            .bindings_yaml(
                "bindings",
                &format!("roles: {{ R: {{ policies: [{}] }} }}", names.join(", ")),
            )
            .build()
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{policies:#?}"));
        let subject = Subject {
            id: pick(&mut rng, SUBJECTS).into(),
            roles: vec!["R".into()].into(),
            ..Default::default()
        };
        let action = pick(&mut rng, &["docs:Read", "docs:Write"]);
        let plan = set.plan(&PlanRequest {
            subject: subject.clone(),
            action: action.into(),
            ..Default::default()
        });
        let w = client_plan(&plan)
            .to_sql(&SqlTable::new("id", "tags"))
            .unwrap_or_else(|e| panic!("case {case}: {e}\nplan: {plan:?}"));
        let expected: BTreeSet<i32> = resources
            .iter()
            .filter(|(_, r)| {
                set.decide(&Request {
                    subject: subject.clone(),
                    action: action.into(),
                    resource: r.clone(),
                    ..Default::default()
                })
                .allowed
            })
            .map(|(n, _)| *n)
            .collect();
        let got = select(&db, &w).await;
        if got.as_ref() != Ok(&expected) {
            let show = |ns: &BTreeSet<i32>| -> Vec<String> {
                ns.iter()
                    .map(|n| format!("{n}: {:?} {:?}", rows[*n as usize].1, rows[*n as usize].2))
                    .collect()
            };
            let detail = match &got {
                Ok(got) => format!(
                    "returned, not allowed: {:#?}\nallowed, not returned: {:#?}",
                    show(&got.difference(&expected).copied().collect()),
                    show(&expected.difference(got).copied().collect()),
                ),
                Err(e) => format!("the query failed: {e}"),
            };
            let expr = match &plan {
                Plan::Conditional(e) => e.to_string(),
                other => format!("{other:?}"),
            };
            panic!(
                "case {case} (seed {seed}): subject {:?}, action {action}\npolicies: {}\nplan: {expr}\nsql: {}\nparams: {:?}\n{detail}",
                subject.id,
                serde_json::to_string_pretty(&policies).unwrap(),
                w.clause,
                w.params,
            );
        }
        conditional += usize::from(matches!(plan, Plan::Conditional(_)));
        templates += usize::from(
            matches!(&plan, Plan::Conditional(e) if e.to_string().contains("id like template")),
        );
        nonempty += usize::from(!expected.is_empty() && expected.len() < rows.len());
    }
    // The generator must exercise the interesting part: conditional plans that select
    // some rows and not others.
    assert!(
        conditional > 150 && nonempty > 100 && templates > 20,
        "{conditional} conditional plans, {nonempty} selecting some rows, {templates} with id templates"
    );
    eprintln!(
        "400 plans ({templates} with id templates) over {} rows in {:?}",
        rows.len(),
        started.elapsed()
    );
}

const DOCS: &str = r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "docs:Read"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/owner": "${aws:username}" }
  - Effect: Allow
    Action: "docs:Read"
    Resource: "doc:shared/*"
    Condition:
      NumericLessThan: { "aws:ResourceTag/level": "3" }
      StringLike: { "aws:ResourceTag/env": "prod*" }
  - Effect: Deny
    Action: "docs:*"
    Resource: "*"
    Condition:
      StringEqualsIgnoreCase: { "aws:ResourceTag/state": "archived" }
  - Effect: Allow
    Action: "docs:List"
    Resource: "doc:*"
    Condition:
      StringLike: { "aws:ResourceTag/owner": "${aws:username}/*" }
"#;

#[tokio::test]
async fn a_plan_from_the_pdp_selects_the_rows_check_allows() {
    let pg = Postgres::start();
    let db = pg.connect().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docs.yaml"), DOCS).unwrap();
    std::fs::write(
        dir.path().join("bindings.yaml"),
        "roles: { Reader: { policies: [docs] } }",
    )
    .unwrap();
    let server = common::start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    let pdp = PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .no_cache()
        .build()
        .unwrap();

    let rows: Vec<(i32, String, Option<Json>)> = [
        ("doc:a", json!({"owner": "alice"})),
        ("doc:b", json!({"owner": "bob"})),
        ("doc:c", json!({"Owner": "alice", "state": "Archived"})),
        ("doc:shared/1", json!({"level": "2", "env": "prod-eu"})),
        ("doc:shared/2", json!({"level": "3", "env": "prod"})),
        (
            "doc:shared/3",
            json!({"level": " 1e0 ", "env": "production"}),
        ),
        ("doc:shared/4", json!({"level": "low", "env": "prod"})),
        ("img:1", json!({"owner": "alice"})),
        ("doc:d", json!({"owner": "a*b/1"})),
        ("doc:e", json!({"owner": "aXb/1"})),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (id, tags))| (i32::try_from(i).unwrap(), id.to_owned(), Some(tags)))
    .collect();
    create_table(&db, &rows).await;

    let plan = pdp
        .plan(PlanQuery::new("alice", "docs:Read").role("Reader").build())
        .await
        .unwrap();
    assert_eq!(plan.kind(), pdp_client::PlanKind::Conditional, "{plan:?}");
    assert!(!plan.policy_revision().is_empty());
    let w = plan
        .to_sql(&SqlTable::new("resources.id", "resources.tags"))
        .unwrap();
    let got = select(&db, &w).await.unwrap();

    let mut allowed = BTreeSet::new();
    for (n, id, tags) in &rows {
        let mut check = pdp_client::Check::new("alice", "docs:Read", id).role("Reader");
        for (k, v) in tags
            .as_ref()
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            check = check.resource_tag(k, v.as_str().unwrap());
        }
        if pdp.check(check.build()).await.unwrap().is_allowed() {
            allowed.insert(*n);
        }
    }
    assert_eq!(got, allowed, "sql: {}\nparams: {:?}", w.clause, w.params);
    assert!(
        !allowed.is_empty() && allowed.len() < rows.len(),
        "{allowed:?}"
    );

    // With the placeholders after the query's own.
    let w = plan
        .to_sql(&SqlTable::new("id", "tags").first_param(2))
        .unwrap();
    let mut params: Vec<&str> = vec!["doc:%"];
    params.extend(w.params.iter().map(|p| p.as_str()));
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let query = format!(
        "SELECT n FROM resources WHERE id LIKE $1 AND {} ORDER BY n",
        w.clause
    );
    let selected = db.query(&query, &refs).await.unwrap();
    let got: BTreeSet<i32> = selected.iter().map(|r| r.get::<_, i32>(0)).collect();
    assert_eq!(got, allowed, "{query}");

    // A `*` in a user name, filled into a `StringLike` value, is literal in the plan too.
    let plan = pdp
        .plan(PlanQuery::new("a*b", "docs:List").role("Reader").build())
        .await
        .unwrap();
    let w = plan.to_sql(&SqlTable::new("id", "tags")).unwrap();
    let got = select(&db, &w).await.unwrap();
    let mut allowed = BTreeSet::new();
    for (n, id, tags) in &rows {
        let mut check = pdp_client::Check::new("a*b", "docs:List", id).role("Reader");
        for (k, v) in tags
            .as_ref()
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            check = check.resource_tag(k, v.as_str().unwrap());
        }
        if pdp.check(check.build()).await.unwrap().is_allowed() {
            allowed.insert(*n);
        }
    }
    assert_eq!(got, allowed, "sql: {}\nparams: {:?}", w.clause, w.params);
    let ids: Vec<&str> = got.iter().map(|n| rows[*n as usize].1.as_str()).collect();
    assert_eq!(ids, ["doc:d"], "{w:?}");
}

#[tokio::test]
async fn numbers_at_rounding_ties_and_the_overflow_edge_compare_as_the_engine_does() {
    let pg = Postgres::start();
    let db = pg.connect().await;
    // 2^53 + 1 and 2^53 + 3 are ties between doubles (rounding to the even one); the
    // others sit just by 0.1's double and by the largest double.
    let values = [
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "9007199254740994",
        "9007199254740995",
        "9007199254740996",
        "9007199254740993.0000000001",
        "9007199254740994.9999999999",
        "0.1",
        "0.1000000000000000055511151231257827",
        "0.09999999999999999",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "-1.7976931348623159e308",
        "1e309",
        "1e-320",
        "0",
    ];
    let rows: Vec<(i32, String, Option<Json>)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                i32::try_from(i).unwrap(),
                "doc:1".to_owned(),
                Some(json!({ "n": v })),
            )
        })
        .collect();
    create_table(&db, &rows).await;
    let subject = Subject {
        id: "alice".into(),
        roles: vec!["R".into()].into(),
        ..Default::default()
    };
    let mut checked = 0;
    for operator in NUMERIC_OPERATORS {
        for p in [
            "9007199254740992",
            "9007199254740994",
            "9007199254740996",
            "0.1",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "0",
        ] {
            let policy = json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "docs:Read", "Resource": "*",
                "Condition": { *operator: { "aws:ResourceTag/n": p } },
            }]});
            let set = PolicySet::builder()
                .policy_yaml("p", &policy.to_string())
                .bindings_yaml("b", "roles: { R: { policies: [p] } }")
                .build()
                .unwrap();
            let plan = set.plan(&PlanRequest {
                subject: subject.clone(),
                action: "docs:Read".into(),
                ..Default::default()
            });
            let w = client_plan(&plan)
                .to_sql(&SqlTable::new("id", "tags"))
                .unwrap();
            let expected: BTreeSet<i32> = rows
                .iter()
                .filter(|(_, id, tags)| {
                    set.decide(&Request {
                        subject: subject.clone(),
                        action: "docs:Read".into(),
                        resource: resource(id, tags.as_ref()),
                        ..Default::default()
                    })
                    .allowed
                })
                .map(|(n, _, _)| *n)
                .collect();
            let got = select(&db, &w).await.unwrap();
            let names = |ns: &BTreeSet<i32>| -> Vec<&str> {
                ns.iter().map(|n| values[*n as usize]).collect()
            };
            assert_eq!(
                names(&got),
                names(&expected),
                "{operator} {p}\nsql: {}\nparams: {:?}",
                w.clause,
                w.params
            );
            checked += usize::from(!expected.is_empty() && expected.len() < rows.len());
        }
    }
    assert!(checked > 30, "{checked} comparisons split the rows");
}
