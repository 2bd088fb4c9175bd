//! berth-docker against the real Docker engine (DOCKER_HOST or the default socket).

mod common;

use std::time::{Duration, Instant};

use berth_docker::{
    BuildSpec, ContainerSpec, ContainerState, DockerClient, DockerError, RestartPolicy,
};
use common::{
    TestEnv, WEB_IMAGE, WEB_MARKER, build_web_image, ensure_web_image, eventually, http_get, tar,
};
use futures_util::StreamExt;

#[tokio::test]
async fn engine_info_reports_version_counts_and_disk_usage() {
    let env = TestEnv::new();
    ensure_web_image(&env.docker).await;
    env.docker.ping().await.unwrap();

    let info = env.docker.engine_info().await.unwrap();

    assert!(!info.version.is_empty());
    assert!(info.api_version.starts_with("1."), "{info:?}");
    assert!(!info.os.is_empty());
    assert!(info.images >= 1, "{info:?}");
    let disk = info.disk.expect("system df works");
    assert!(disk.images_bytes > 0, "{disk:?}");
    assert!(env.docker.api_version().is_some());
}

#[tokio::test]
async fn a_missing_socket_is_unreachable_at_once_and_names_the_target() {
    let dir = tempdir();
    let path = dir.join("docker.sock");
    let docker = DockerClient::connect(Some(path.to_str().unwrap())).unwrap();
    let target = format!("unix://{}", path.display());
    assert_eq!(docker.target(), target);

    let started = Instant::now();
    let err = docker.ping().await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains(&target), "{err}");
    assert!(err.hint().unwrap().contains("DOCKER_HOST"));
    // Every call fails the same way, streams included.
    assert!(
        docker
            .list_containers(&[])
            .await
            .unwrap_err()
            .is_unreachable()
    );
    let mut events = docker.container_events(&[]);
    assert!(events.next().await.unwrap().unwrap_err().is_unreachable());
    assert!(events.next().await.is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_refused_quickly() {
    let dir = tempdir();
    let path = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let docker = DockerClient::connect(Some(path.to_str().unwrap())).unwrap();

    let started = Instant::now();
    let err = docker.engine_info().await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err,
        DockerError::Unreachable {
            target: format!("unix://{}", path.display()),
            reason: "connection refused".to_owned(),
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_client_connects_once_the_engine_appears() {
    let dir = tempdir();
    let path = dir.join("later.sock");
    let docker = DockerClient::connect(Some(path.to_str().unwrap())).unwrap();
    assert!(docker.ping().await.unwrap_err().is_unreachable());

    // The engine "starts": the socket appears where the client looks.
    let real = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    std::os::unix::fs::symlink(real, &path).unwrap();

    docker.ping().await.unwrap();
    assert!(docker.api_version().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn pulling_from_a_closed_local_port_fails_with_the_daemons_message() {
    let env = TestEnv::new();
    let image = "127.0.0.1:1/berth-test/nope:1";

    let items: Vec<_> = env.docker.pull_image(image).collect().await;

    let last = items.last().expect("the pull reports something");
    match last {
        Err(DockerError::Daemon { message, .. }) => {
            assert!(message.contains("127.0.0.1:1"), "{message}");
        }
        other => panic!("expected the daemon's error, got {other:?}"),
    }
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    assert!(!env.docker.image_exists(image).await.unwrap());
}

#[tokio::test]
async fn a_web_container_serves_restarts_logs_reports_events_and_leaves_nothing_behind() {
    let env = TestEnv::new();
    let docker = &env.docker;
    ensure_web_image(docker).await;
    let since = common::unix_now() - 1;

    // A labelled project network; asking twice creates it once.
    let network = env.name("net");
    docker
        .ensure_network(&network, &env.labels())
        .await
        .unwrap();
    docker
        .ensure_network(&network, &env.labels())
        .await
        .unwrap();
    let networks = docker.list_networks(&env.filter()).await.unwrap();
    assert_eq!(networks.len(), 1, "{networks:?}");
    assert_eq!(networks[0].name, network);
    assert_eq!(networks[0].labels, env.labels());

    let spec = ContainerSpec {
        name: env.name("web"),
        image: WEB_IMAGE.to_owned(),
        cmd: None,
        env: vec![("BERTH_TEST".to_owned(), "1".to_owned())],
        labels: env.labels(),
        network: network.clone(),
        network_aliases: vec!["web".to_owned()],
        container_port: 8080,
        restart: RestartPolicy::UnlessStopped,
        ..Default::default()
    };
    let id = docker.create_container(&spec).await.unwrap();
    let created = docker.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(created.state, ContainerState::Created);
    assert_eq!(created.started_at, None);

    docker.start_container(&id).await.unwrap();
    let running = docker.inspect_container(&spec.name).await.unwrap().unwrap();
    assert_eq!(running.id, id);
    assert_eq!(running.name, spec.name);
    assert_eq!(running.image, WEB_IMAGE);
    assert_eq!(running.state, ContainerState::Running);
    assert_eq!(running.exit_code, None);
    // The image's labels come along with the container's own.
    for (key, value) in env.labels() {
        assert_eq!(
            running.labels.get(&key),
            Some(&value),
            "{:?}",
            running.labels
        );
    }
    let port = running.host_port.expect("8080 is published on 127.0.0.1");
    let body = serve(port).await;
    assert!(body.contains(WEB_MARKER), "{body}");

    let listed = docker.list_containers(&env.filter()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], running);

    // Restart: a fresh start, still serving.
    docker.restart_container(&id, 1).await.unwrap();
    let restarted = docker.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(restarted.state, ContainerState::Running);
    assert_ne!(restarted.started_at, running.started_at);
    let port = restarted.host_port.unwrap();
    assert!(serve(port).await.contains(WEB_MARKER));

    // httpd -v logs each request on stderr.
    let lines = docker.logs_tail(&id, 50).await.unwrap();
    assert!(
        lines.iter().any(|l| l.contains("response:200")),
        "{lines:?}"
    );
    assert_eq!(docker.logs_tail(&id, 1).await.unwrap().len(), 1);

    docker.stop_container(&id, 1).await.unwrap();
    docker.stop_container(&id, 1).await.unwrap(); // already stopped: fine
    let stopped = docker.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(stopped.exit_code.is_some());
    assert!(stopped.finished_at.is_some());
    assert_eq!(stopped.host_port, None);

    // Events: two starts (start, restart) and two deaths (restart, stop).
    let mut events = docker.container_events_since(&env.filter(), since);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.iter().filter(|(a, _)| a == "die").count() < 2 {
        let event = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .unwrap_or_else(|_| panic!("no second die event; saw {seen:?}"))
            .expect("event stream open")
            .unwrap();
        assert_eq!(event.container_id, id);
        assert_eq!(event.name, spec.name);
        assert_eq!(event.labels.get("berth.test"), Some(&env.id));
        if event.action == "die" {
            assert!(event.exit_code.is_some(), "{event:?}");
        }
        seen.push((event.action, event.exit_code));
    }
    drop(events);
    let actions: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "start").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(actions[0], "create", "{actions:?}");

    docker.remove_container(&id).await.unwrap();
    docker.remove_container(&id).await.unwrap(); // already gone: fine
    assert_eq!(docker.inspect_container(&id).await.unwrap(), None);
    docker.remove_network(&network).await.unwrap();
    docker.remove_network(&network).await.unwrap();

    env.assert_nothing_left().await;
}

#[tokio::test]
async fn containers_without_a_port_publish_nothing_and_names_are_unique() {
    let env = TestEnv::new();
    let docker = &env.docker;
    ensure_web_image(docker).await;
    let spec = ContainerSpec {
        name: env.name("db"),
        image: WEB_IMAGE.to_owned(),
        cmd: Some(vec!["/busybox".into(), "sleep".into(), "60".into()]),
        labels: env.labels(),
        container_port: 0,
        ..Default::default()
    };
    let id = docker.create_container(&spec).await.unwrap();
    docker.start_container(&id).await.unwrap();
    let info = docker.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.host_port, None);

    let again = docker.create_container(&spec).await.unwrap_err();
    assert!(matches!(again, DockerError::Conflict(_)), "{again:?}");

    let missing = ContainerSpec {
        name: env.name("missing"),
        image: "berth-test/does-not-exist:1".to_owned(),
        labels: env.labels(),
        ..Default::default()
    };
    let err = docker.create_container(&missing).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        docker.inspect_container(&env.name("none")).await.unwrap(),
        None
    );

    docker.remove_container(&id).await.unwrap();
    env.assert_nothing_left().await;
}

#[tokio::test]
async fn an_image_builds_from_an_in_memory_context_and_is_removed() {
    let env = TestEnv::new();
    let docker = &env.docker;
    let tag = format!("berth-test/{}:1", env.id);

    // The same build the tests fall back to when berth-test/web is missing.
    let lines = build_web_image(docker, &tag, env.labels()).await;

    assert!(
        lines.iter().any(|l| l.contains("COPY busybox")),
        "{lines:?}"
    );
    assert!(docker.image_exists(&tag).await.unwrap());
    docker.remove_image(&tag).await.unwrap();
    assert!(!docker.image_exists(&tag).await.unwrap());
    docker.remove_image(&tag).await.unwrap();

    // A broken Dockerfile ends the stream with the daemon's message.
    let spec = BuildSpec {
        tag: tag.clone(),
        labels: env.labels(),
        ..Default::default()
    };
    let broken = tar(&[("Dockerfile", 0o644, b"FROM scratch\nCOPY nope /nope\n")]);
    let items: Vec<_> = docker.build_image(&spec, broken).collect().await;
    match items.last() {
        Some(Err(DockerError::Daemon { message, .. })) => {
            assert!(message.contains("nope"), "{message}")
        }
        other => panic!("expected a build error, got {other:?}"),
    }
    assert!(!docker.image_exists(&tag).await.unwrap());
}

/// GETs `/` until busybox httpd answers 200; the body.
async fn serve(port: u16) -> String {
    eventually("httpd to answer", Duration::from_secs(10), || async {
        match http_get(port, "/").await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await
}

/// A fresh directory for sockets (short path: unix socket paths are limited).
fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "berth-docker-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
