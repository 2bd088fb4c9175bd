//! Volumes against the real Docker engine: created once, found by label,
//! never removed with a container, removed only when unused, mounted, and
//! copied from one container's volume into another's.

#[expect(
    dead_code,
    reason = "tests/common serves every test file; this one needs no HTTP"
)]
mod common;

use std::time::Duration;

use berth_docker::{
    BuildSpec, ContainerInfo, ContainerSpec, ContainerState, DockerClient, DockerError, Mount,
    MountInfo, MountKind,
};
use common::{TestEnv, WEB_IMAGE, ensure_web_image, eventually, is_anonymous_volume, tar};
use futures_util::StreamExt;

#[tokio::test]
async fn a_volume_is_created_once_found_by_label_and_removed_only_when_unused() {
    let env = TestEnv::new();
    let docker = &env.docker;
    ensure_web_image(docker).await;
    let name = env.name("data");

    let (volume, created) = docker.ensure_volume(&name, &env.labels()).await.unwrap();
    assert!(created);
    assert_eq!(volume.name, name);
    assert_eq!(volume.labels, env.labels());
    assert!(volume.mountpoint.contains(&name), "{volume:?}");
    assert!(volume.created_at.is_some(), "{volume:?}");

    // Asking again creates nothing and keeps the labels it has.
    let mut other_labels = env.labels();
    other_labels.insert("berth.kind".to_owned(), "database".to_owned());
    let (again, created) = docker.ensure_volume(&name, &other_labels).await.unwrap();
    assert!(!created);
    assert_eq!(again, volume);
    assert_eq!(
        docker.inspect_volume(&name).await.unwrap(),
        Some(volume.clone())
    );
    assert_eq!(
        docker.list_volumes(&env.filter()).await.unwrap(),
        vec![volume.clone()]
    );
    assert_eq!(
        docker.inspect_volume(&env.name("none")).await.unwrap(),
        None
    );
    assert!(docker.ensure_volume("../etc", &env.labels()).await.is_err());

    // A created (never started) container is enough to hold it.
    let id = docker
        .create_container(&ContainerSpec {
            name: env.name("holder"),
            image: WEB_IMAGE.to_owned(),
            labels: env.labels(),
            mounts: vec![Mount::Volume {
                name: name.clone(),
                target: "/data".to_owned(),
                read_only: false,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let users = docker.containers_using_volume(&name).await.unwrap();
    assert_eq!(ids(&users), vec![id.clone()]);
    let usage = docker.volume_usage().await.unwrap();
    let used = usage.get(&name).expect("system df lists the volume");
    assert_eq!(used.containers, 1, "{used:?}");

    let err = docker.remove_volume(&name).await.unwrap_err();
    match &err {
        DockerError::Conflict(message) => assert!(message.contains("in use"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(docker.inspect_volume(&name).await.unwrap().is_some());

    // Removing the container keeps the volume.
    docker.remove_container(&id).await.unwrap();
    assert_eq!(docker.inspect_volume(&name).await.unwrap(), Some(volume));
    assert!(
        docker
            .containers_using_volume(&name)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(docker.volume_usage().await.unwrap()[&name].containers, 0);

    docker.remove_volume(&name).await.unwrap();
    assert_eq!(docker.inspect_volume(&name).await.unwrap(), None);
    docker.remove_volume(&name).await.unwrap(); // already gone: fine
    env.assert_nothing_left().await;
}

#[tokio::test]
async fn data_written_to_a_volume_and_a_host_directory_outlives_the_container() {
    let env = TestEnv::new();
    let docker = &env.docker;
    ensure_web_image(docker).await;
    let name = env.name("data");
    docker.ensure_volume(&name, &env.labels()).await.unwrap();
    let host_dir = tempdir();
    let host_path = host_dir.to_str().unwrap().to_owned();

    let writer = run_to_exit(
        docker,
        &ContainerSpec {
            name: env.name("writer"),
            image: WEB_IMAGE.to_owned(),
            cmd: Some(sh("echo hi > /v/f; echo ho > /b/f")),
            labels: env.labels(),
            mounts: vec![
                Mount::Volume {
                    name: name.clone(),
                    target: "/v".to_owned(),
                    read_only: false,
                },
                Mount::Bind {
                    source: host_path.clone(),
                    target: "/b".to_owned(),
                    read_only: false,
                },
            ],
            ..Default::default()
        },
    )
    .await;

    assert_eq!(writer.exit_code, Some(0), "{writer:?}");
    assert_eq!(writer.mounts.len(), 2, "{:?}", writer.mounts);
    assert_eq!(
        writer.mounts[0],
        MountInfo {
            kind: MountKind::Bind,
            name: None,
            source: host_path.clone(),
            destination: "/b".to_owned(),
            read_only: false,
        }
    );
    let volume_mount = &writer.mounts[1];
    assert_eq!(volume_mount.kind, MountKind::Volume);
    assert_eq!(volume_mount.name.as_deref(), Some(name.as_str()));
    assert_eq!(volume_mount.destination, "/v");
    assert!(!volume_mount.read_only);
    assert_eq!(std::fs::read_to_string(host_dir.join("f")).unwrap(), "ho\n");
    if let Some(size) = docker.volume_usage().await.unwrap()[&name].size_bytes {
        assert!(size >= 3, "{size}");
    }

    docker.remove_container(&writer.id).await.unwrap();

    // A second container finds the data, and cannot write to a read-only mount.
    let reader = run_to_exit(
        docker,
        &ContainerSpec {
            name: env.name("reader"),
            image: WEB_IMAGE.to_owned(),
            cmd: Some(sh("cat /v/f; echo x > /v/g || echo refused")),
            labels: env.labels(),
            mounts: vec![Mount::Volume {
                name: name.clone(),
                target: "/v".to_owned(),
                read_only: true,
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(reader.mounts[0].read_only, "{:?}", reader.mounts);
    let lines = docker.logs_tail(&reader.id, 10).await.unwrap();
    // stdout and stderr (sh's complaint) may come in either order.
    assert!(lines.iter().any(|l| l == "hi"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "refused"), "{lines:?}");

    docker.remove_container(&reader.id).await.unwrap();
    docker.remove_volume(&name).await.unwrap();
    let _ = std::fs::remove_dir_all(&host_dir);
    env.assert_nothing_left().await;
}

#[tokio::test]
async fn an_images_volume_becomes_an_anonymous_volume_that_outlives_its_container() {
    let env = TestEnv::new();
    let docker = &env.docker;
    let image = build_volume_image(&env).await;

    let info = docker.image_info(&image).await.unwrap().unwrap();
    assert_eq!(info.volumes, vec!["/data".to_owned()]);
    let web = docker.image_info(WEB_IMAGE).await.unwrap().unwrap();
    assert!(web.volumes.is_empty(), "{web:?}");

    let container = run_to_exit(
        docker,
        &ContainerSpec {
            name: env.name("anon"),
            image: image.clone(),
            cmd: Some(sh("echo kept > /data/a.txt")),
            labels: env.labels(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(container.exit_code, Some(0));
    let anonymous = anonymous_volume_at(&container, "/data");
    let volume = docker.inspect_volume(&anonymous).await.unwrap().unwrap();
    assert!(volume.labels.is_empty(), "{volume:?}");

    docker.remove_container(&container.id).await.unwrap();

    assert_eq!(
        docker.inspect_volume(&anonymous).await.unwrap(),
        Some(volume)
    );
    docker.remove_volume(&anonymous).await.unwrap();
    assert_eq!(docker.inspect_volume(&anonymous).await.unwrap(), None);
    docker.remove_image(&image).await.unwrap();
    env.assert_nothing_left().await;
}

#[tokio::test]
async fn a_directory_is_copied_from_an_anonymous_volume_into_a_named_one() {
    let env = TestEnv::new();
    let docker = &env.docker;
    let image = build_volume_image(&env).await;

    // A: the old container, its data in an anonymous volume, stopped.
    let old = run_to_exit(
        docker,
        &ContainerSpec {
            name: env.name("old"),
            image: image.clone(),
            cmd: Some(sh(
                "mkdir /data/sub && echo copied > /data/a.txt && echo deep > /data/sub/b.txt",
            )),
            labels: env.labels(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(old.exit_code, Some(0));
    let anonymous = anonymous_volume_at(&old, "/data");

    // B: the new container on a named volume, created but not started.
    let name = env.name("data");
    docker.ensure_volume(&name, &env.labels()).await.unwrap();
    let on_data = |read_only| {
        vec![Mount::Volume {
            name: name.clone(),
            target: "/data".to_owned(),
            read_only,
        }]
    };
    let new = docker
        .create_container(&ContainerSpec {
            name: env.name("new"),
            image: image.clone(),
            cmd: Some(sh("cat /data/a.txt /data/sub/b.txt")),
            labels: env.labels(),
            mounts: on_data(false),
            ..Default::default()
        })
        .await
        .unwrap();

    let copied = docker.copy_path(&old.id, "/data", &new).await.unwrap();

    assert!(copied >= 1024, "{copied} bytes");
    docker.start_container(&new).await.unwrap();
    let new_info = wait_for_exit(docker, &new).await;
    assert_eq!(new_info.exit_code, Some(0), "{new_info:?}");
    assert_eq!(
        docker.logs_tail(&new, 10).await.unwrap(),
        vec!["copied", "deep"]
    );

    // The named volume holds the data once both containers are gone.
    docker.remove_container(&new).await.unwrap();
    let check = run_to_exit(
        docker,
        &ContainerSpec {
            name: env.name("check"),
            image: WEB_IMAGE.to_owned(),
            cmd: Some(sh("cat /data/sub/b.txt")),
            labels: env.labels(),
            mounts: on_data(true),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(docker.logs_tail(&check.id, 10).await.unwrap(), vec!["deep"]);

    // What cannot be copied says why.
    let missing = docker
        .copy_path(&old.id, "/nope", &check.id)
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    let gone = docker
        .copy_path(&old.id, "/data", &env.name("none"))
        .await
        .unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    for path in ["/", "data", "/data/../etc"] {
        let err = docker.copy_path(&old.id, path, &check.id).await;
        assert!(matches!(err, Err(DockerError::Other(_))), "{path}: {err:?}");
    }

    docker.remove_container(&check.id).await.unwrap();
    docker.remove_container(&old.id).await.unwrap();
    docker.remove_volume(&anonymous).await.unwrap();
    docker.remove_volume(&name).await.unwrap();
    docker.remove_image(&image).await.unwrap();
    env.assert_nothing_left().await;
}

/// `FROM berth-test/web` with `VOLUME /data`, tagged for this test.
async fn build_volume_image(env: &TestEnv) -> String {
    ensure_web_image(&env.docker).await;
    let tag = format!("berth-test/{}-volume:1", env.id);
    let dockerfile = format!("FROM {WEB_IMAGE}\nVOLUME /data\n");
    let spec = BuildSpec {
        tag: tag.clone(),
        labels: env.labels(),
        ..Default::default()
    };
    let context = tar(&[("Dockerfile", 0o644, dockerfile.as_bytes())]);
    let mut output = env.docker.build_image(&spec, context);
    while let Some(line) = output.next().await {
        line.expect("building the volume test image");
    }
    tag
}

/// Creates and starts the container, and waits for it to exit.
async fn run_to_exit(docker: &DockerClient, spec: &ContainerSpec) -> ContainerInfo {
    let id = docker.create_container(spec).await.unwrap();
    docker.start_container(&id).await.unwrap();
    wait_for_exit(docker, &id).await
}

async fn wait_for_exit(docker: &DockerClient, id: &str) -> ContainerInfo {
    eventually("the container to exit", Duration::from_secs(10), || async {
        let info = docker.inspect_container(id).await.unwrap()?;
        (info.state == ContainerState::Exited).then_some(info)
    })
    .await
}

/// The name of the anonymous volume mounted at `destination`.
fn anonymous_volume_at(container: &ContainerInfo, destination: &str) -> String {
    let mount = container
        .mounts
        .iter()
        .find(|m| m.destination == destination)
        .unwrap_or_else(|| panic!("nothing at {destination}: {:?}", container.mounts));
    assert_eq!(mount.kind, MountKind::Volume, "{mount:?}");
    let name = mount.name.clone().expect("a volume has a name");
    assert!(is_anonymous_volume(&name), "{name}");
    name
}

/// busybox `sh -c script`.
fn sh(script: &str) -> Vec<String> {
    vec!["/busybox".into(), "sh".into(), "-c".into(), script.into()]
}

fn ids(containers: &[ContainerInfo]) -> Vec<String> {
    containers.iter().map(|c| c.id.clone()).collect()
}

/// A fresh host directory to bind-mount.
fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "berth-docker-volumes-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
