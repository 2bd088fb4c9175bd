//! The whole pipeline on small compose files: what is planned, what is
//! refused (with its key and line), and what needs a confirmation.

use berth_compose::plan::{Condition, MountSource, WarningKind};
use berth_compose::{Format, Options, Plan, plan};
use berth_core::DeployStrategy;

fn compose(text: &str) -> Plan {
    plan(text, Format::Compose, &Options::default())
}

fn errors(p: &Plan) -> Vec<String> {
    p.errors.iter().map(ToString::to_string).collect()
}

fn dangers(p: &Plan) -> Vec<String> {
    p.dangers().map(|w| w.message.clone()).collect()
}

#[test]
fn a_full_service_plans_into_berths_types() {
    let p = compose(
        r#"
name: shop
version: "3.8"
services:
  web:
    build:
      context: ./web
      dockerfile: Dockerfile.prod
      args: {NODE_ENV: production}
      target: runtime
    command: npm run start -- --port 3000
    entrypoint: ["/sbin/tini", "--"]
    environment:
      - PLAIN=1
      - EMPTY=
    env_file: [.env, {path: .env.local, required: false}]
    ports: ["127.0.0.1:8080:3000/tcp", "9000-9001"]
    expose: [3000]
    user: "1000:1000"
    working_dir: /app
    hostname: web
    labels: {team: shop}
    cap_drop: [ALL]
    cap_add: [CHOWN]
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    shm_size: 256m
    tmpfs: /tmp
    stop_grace_period: 1m30s
    stop_signal: SIGTERM
    sysctls: [net.core.somaxconn=1024]
    tty: true
    stdin_open: true
    platform: linux/amd64
    logging: {driver: json-file, options: {max-size: 10m}}
    security_opt: [no-new-privileges:true]
    deploy: {resources: {limits: {cpus: "0.5", memory: 512M}}}
    restart: on-failure:3
    healthcheck:
      test: curl -f http://localhost:3000/health
      interval: 10s
      start_period: 1m
    secrets: [api_key, {source: cert, target: /etc/ssl/cert.pem, mode: "0400"}]
    configs: [nginx]
    container_name: shop-web
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
      cache: {condition: service_started}
  db:
    image: postgres:16.6
    volumes:
      - type: volume
        source: pg_data
        target: /var/lib/postgresql/data
      - ./init.sql:/docker-entrypoint-initdb.d/init.sql:ro
  migrate:
    image: shop/migrate:1.2.0
  cache:
    image: valkey/valkey:8.0.2
volumes:
  pg_data: {}
secrets:
  api_key: {environment: API_KEY}
  cert: {file: ./cert.pem}
configs:
  nginx: {file: ./nginx.conf}
"#,
    );
    assert!(p.is_ok(), "{:?}", errors(&p));
    assert_eq!(p.name.as_deref(), Some("shop"));
    let web = &p.services[0];
    let build = web.build.as_ref().unwrap();
    assert_eq!(build.dockerfile.as_deref(), Some("Dockerfile.prod"));
    assert_eq!(build.target.as_deref(), Some("runtime"));
    assert_eq!(build.args["NODE_ENV"], "production");
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["npm", "run", "start", "--", "--port", "3000"]
    );
    assert_eq!(web.environment["PLAIN"], "1");
    assert_eq!(web.environment["EMPTY"], "");
    assert!(!web.env_files[1].required);
    assert_eq!(web.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(web.ports[0].published.as_deref(), Some("8080"));
    assert_eq!(web.ports[0].target, 3000);
    assert_eq!((web.ports[1].target, web.ports[1].target_end), (9000, 9001));
    assert_eq!(web.ulimits["nofile"].hard, 2048);
    assert_eq!(web.ulimits["nproc"].soft, 512);
    assert_eq!(web.shm_size, Some(256 << 20));
    assert_eq!(web.stop_grace_period_ms, Some(90_000));
    assert_eq!(web.limits.memory, Some(512 << 20));
    assert_eq!(web.limits.cpus, Some(0.5));
    assert_eq!(web.healthcheck.as_ref().unwrap().test[0], "CMD-SHELL");
    assert_eq!(
        web.healthcheck.as_ref().unwrap().start_period_ms,
        Some(60_000)
    );
    assert_eq!(web.secrets[0].target, "/run/secrets/api_key");
    assert_eq!(web.secrets[1].target, "/etc/ssl/cert.pem");
    assert_eq!(web.secrets[1].mode, Some(0o400));
    assert_eq!(web.configs[0].target, "/nginx");
    let conditions: Vec<Condition> = web.depends_on.iter().map(|d| d.condition).collect();
    assert_eq!(
        conditions,
        [
            Condition::ServiceHealthy,
            Condition::ServiceCompletedSuccessfully,
            Condition::ServiceStarted
        ]
    );
    assert_eq!(web.strategy, DeployStrategy::Rolling);
    let db = &p.services[1];
    assert_eq!(db.strategy, DeployStrategy::Recreate);
    assert!(
        matches!(&db.volumes[0].source, MountSource::Volume { volume, .. } if volume.as_str() == "pg-data")
    );
    assert!(db.volumes[1].read_only);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.kind == WarningKind::Note && w.message.contains("container_name"))
    );
    assert!(p.warnings.iter().any(|w| w.message.contains("version")));
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let p = compose(
        "services:\n  web:\n    image: nginx:1.27.3\n    volumes_from: [x]\n    frobnicate: 1\n",
    );
    assert_eq!(
        errors(&p),
        [
            "line 4: services.web.volumes_from: not supported: berth mounts named volumes per service; declare the shared volume in both services instead",
            "line 5: services.web.frobnicate: not supported by berth (see the crate's supported list)",
        ]
    );
    let p = compose("services:\n  web:\n    image: nginx:1.27.3\nplugins: {}\n");
    assert_eq!(
        errors(&p),
        [
            "line 4: plugins: unknown top-level key: berth reads configs, name, networks, secrets, services, version, volumes and x- extensions"
        ]
    );
}

#[test]
fn nested_keys_berth_would_not_apply_are_errors_too() {
    let p = compose(
        "services:\n  web:\n    image: nginx:1.27.3\n    logging: {driver: local, tag: x}\n    volumes:\n      - type: volume\n        source: data\n        target: /data\n        volume: {subpath: a}\n",
    );
    assert_eq!(
        errors(&p),
        [
            "line 4: services.web.logging.tag: not supported here (berth reads driver, options)",
            "line 9: services.web.volumes.volume.subpath: not supported by berth",
        ]
    );
}

#[test]
fn extension_fields_and_merged_anchors_plan() {
    let p = compose(
        "x-common: &common\n  restart: always\n  x-note: kept for anchors\nservices:\n  web:\n    <<: *common\n    image: nginx:1.27.3\n",
    );
    assert!(p.is_ok(), "{:?}", errors(&p));
    assert_eq!(
        p.services[0].restart,
        Some(berth_core::RestartPolicy::Always)
    );
}

#[test]
fn dangerous_settings_need_a_confirmation() {
    let p = compose(
        r#"
services:
  agent:
    image: agent:1.0.0
    privileged: true
    network_mode: host
    pid: host
    devices: [/dev/kvm:/dev/kvm]
    cap_add: [NET_ADMIN, SYS_ADMIN, CHOWN]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - /etc:/host-etc:ro
      - ./data:/data
"#,
    );
    assert!(p.is_ok(), "{:?}", errors(&p));
    let d = dangers(&p);
    assert_eq!(d.len(), 8, "{d:#?}");
    assert!(d.iter().any(|m| m.contains("Docker socket")));
    assert!(d.iter().any(|m| m.contains("/etc")));
    assert!(
        !d.iter()
            .any(|m| m.contains("CHOWN") || m.contains("./data"))
    );
}

#[test]
fn unpinned_images_are_warnings() {
    let p = compose(
        "services:\n  a:\n    image: nginx\n  b:\n    image: nginx:latest\n  c:\n    image: nginx:1.27.3\n",
    );
    let unpinned: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::UnpinnedImage)
        .map(|w| w.service.clone().unwrap())
        .collect();
    assert_eq!(unpinned, ["a", "b"]);
}

#[test]
fn broken_references_are_errors() {
    let p = compose(
        "services:\n  a:\n    image: x:1\n    depends_on: [nope]\n    secrets: [missing]\n  b:\n    image: x:1\n    depends_on: [c]\n  c:\n    image: x:1\n    depends_on: {b: {condition: service_healthy}}\n",
    );
    let e = errors(&p).join("\n");
    assert!(e.contains("\"nope\" is not a service"), "{e}");
    assert!(e.contains("\"missing\" is not declared"), "{e}");
    assert!(e.contains("loop"), "{e}");
    let p = compose(
        "services:\n  a:\n    image: x:1\n    depends_on: {b: {condition: service_ready}}\n  b:\n    image: x:1\n",
    );
    assert!(
        errors(&p)[0].starts_with("line 4: services.a.depends_on.b.condition"),
        "{:?}",
        errors(&p)
    );
    let p = compose("services:\n  a:\n    command: run\n");
    assert_eq!(
        errors(&p),
        ["line 2: services.a: needs an `image` or a `build`"]
    );
}

#[test]
fn variables_become_inputs_and_missing_required_ones_are_errors() {
    let p = compose(
        "services:\n  a:\n    image: app:${TAG:-1.0}\n    environment:\n      KEY: ${KEY:?set the API key}\n      OTHER: ${OTHER:?also needed}\n",
    );
    assert_eq!(
        errors(&p),
        [
            "line 5: KEY is required: set the API key",
            "line 6: OTHER is required: also needed"
        ]
    );
    assert_eq!(p.inputs[0].default.as_deref(), Some("1.0"));
    assert!(p.inputs[1].required);
}

#[test]
fn a_key_without_a_value_takes_the_input_of_that_name() {
    let text = "services:\n  a:\n    image: x:1\n    environment: [TOKEN, PLAIN=1]\n";
    let p = compose(text);
    assert_eq!(p.inputs[0].name, "TOKEN");
    assert!(!p.services[0].environment.contains_key("TOKEN"));
    let mut options = Options::default();
    options.inputs.insert("TOKEN".into(), "t".into());
    let p = plan(text, Format::Compose, &options);
    assert_eq!(p.services[0].environment["TOKEN"], "t");
}

#[test]
fn profiles_outside_the_default_are_left_out() {
    let p = compose(
        "services:\n  a:\n    image: x:1\n  debug:\n    image: y:1\n    profiles: [debug]\n",
    );
    assert_eq!(p.services.len(), 1);
    assert!(p.warnings.iter().any(|w| w.message.contains("profile")));
}

#[test]
fn coolify_variables_declare_routes_and_generated_values() {
    let text = r#"# documentation: https://example.org
# slogan: An example.
# port: 3000

services:
  my-app:
    image: example/app:2.0.1
    environment:
      - SERVICE_URL_MY_APP_3000
      - API=${SERVICE_URL_MY_APP}/api
      - DB_URL=postgres://${SERVICE_USER_PG}:${SERVICE_PASSWORD_PG}@db/app
      - INFLUX=${SERVICE_PASSWORD_INFLUXDB_TOKEN}
      - TZ=${TZ:?UTC}
    exclude_from_hc: true
    volumes:
      - type: bind
        source: ./config/app.toml
        target: /etc/app.toml
        content: |
          listen = 3000
      - type: bind
        source: ./uploads
        target: /uploads
        is_directory: true
  api:
    image: example/api:2.0.1
    environment:
      - SERVICE_URL_API_8080=/api
"#;
    let mut options = Options::default();
    options.values.insert(
        "SERVICE_URL_MY_APP".into(),
        "https://app.example.com".into(),
    );
    options
        .values
        .insert("SERVICE_PASSWORD_PG".into(), "s3cret".into());
    let p = plan(text, Format::Coolify, &options);
    assert!(p.is_ok(), "{:?}", errors(&p));
    assert_eq!(p.metadata.as_ref().unwrap().port, Some(3000));
    assert_eq!(
        p.metadata.as_ref().unwrap().service.as_deref(),
        Some("my-app")
    );
    let routes: Vec<_> = p
        .routes
        .iter()
        .map(|r| (r.service.as_str(), r.port, r.path.as_str()))
        .collect();
    assert_eq!(
        routes,
        [("my-app", Some(3000), "/"), ("api", Some(8080), "/api")]
    );
    let generated: Vec<_> = p.generated.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        generated,
        [
            "SERVICE_USER_PG",
            "SERVICE_PASSWORD_PG",
            "SERVICE_PASSWORD_INFLUXDB_TOKEN"
        ]
    );
    let app = &p.services[0];
    assert_eq!(
        app.environment["SERVICE_URL_MY_APP_3000"],
        "https://app.example.com"
    );
    assert_eq!(app.environment["API"], "https://app.example.com/api");
    assert_eq!(
        app.environment["DB_URL"],
        "postgres://<SERVICE_USER_PG>:s3cret@db/app"
    );
    assert_eq!(app.environment["TZ"], "UTC");
    assert!(app.exclude_from_health);
    assert!(
        matches!(&app.volumes[0].source, MountSource::Bind { content: Some(c), is_directory: false, .. } if c.contains("listen"))
    );
    assert!(matches!(
        &app.volumes[1].source,
        MountSource::Bind {
            is_directory: true,
            ..
        }
    ));
    assert_eq!(
        p.services[1].environment["SERVICE_URL_API_8080"],
        "<SERVICE_URL_API>/api"
    );
    // The JSON never holds values, generated or not.
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        !json.contains("s3cret") && !json.contains("listen = 3000"),
        "{json}"
    );
}

#[test]
fn a_berth_template_with_an_unknown_field_names_its_line() {
    let p = plan(
        "metadata:\n  name: x\n  colour: red\ncompose:\n  services: {}\n",
        Format::Berth,
        &Options::default(),
    );
    assert_eq!(p.errors[0].line, Some(3), "{:?}", errors(&p));
}

#[test]
fn a_hostile_file_is_refused_not_expanded() {
    // Each level doubles the one before: without bounds this is 2^30 items.
    let mut text = String::from("a0: &a0 [\"${X:-xxxxxxxxxxxxxxxx}\"]\n");
    for i in 1..30 {
        text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
    }
    text.push_str("services:\n  web:\n    image: x:1\n");
    assert!(errors(&compose(&text))[0].contains("repetition limit"));
    // Within the parser's limit, but 10,000 copies of a 1 KB default: the
    // interpolation budget stops it.
    let text = format!(
        "x-a: &a \"${{X:-{}}}\"\nx-b: &b [{}]\nx-c: [{}]\nservices:\n  web:\n    image: x:1\n",
        "y".repeat(1000),
        vec!["*a"; 500].join(","),
        vec!["*b"; 20].join(",")
    );
    assert!(errors(&compose(&text))[0].contains("more than 4194304 bytes"));
    let big = "a: \"".to_owned() + &"x".repeat(2 << 20) + "\"\n";
    assert!(errors(&compose(&big))[0].contains("larger than"));
}

#[test]
fn the_format_is_guessed_from_the_file() {
    assert_eq!(
        Format::detect("metadata:\n  name: x\ncompose:\n  services: {}\n"),
        Format::Berth
    );
    assert_eq!(
        Format::detect("# documentation: https://x\nservices: {}\n"),
        Format::Coolify
    );
    assert_eq!(Format::detect("# my app\nservices: {}\n"), Format::Compose);
}
