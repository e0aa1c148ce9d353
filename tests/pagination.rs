//! Lists are paginated on every store: a caller with a 64 KiB message limit
//! (where ListExperiments used to fail at 501 experiments) walks 1,050
//! experiments page by page (default pages) and sees each name exactly once,
//! in order; so does a caller asking for the largest pages.

mod common;

use common::{BACKENDS, TestServer};
use posterior::pb::{self, optimizer_client::OptimizerClient};
use tonic::Code;

/// More than 1,000 (the largest page) and than 501 (the old failure).
const EXPERIMENTS: usize = 1_050;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_name_once_page_by_page_on_every_store() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let c = server
            .client()
            .await
            // The limit of the user who reported the failure.
            .max_decoding_message_size(64 * 1024);
        let mut want = Vec::new();
        for i in 0..EXPERIMENTS {
            // Long names make the old single answer far larger than 64 KiB.
            let name = format!("experiment-with-a-fairly-long-descriptive-name-{i:05}");
            c.clone()
                .create_experiment(pb::CreateExperimentRequest {
                    name: name.clone(),
                    arms: vec!["a".into()],
                    ..Default::default()
                })
                .await
                .expect("create");
            want.push(name);
        }
        want.sort();

        // The default page is 100 names.
        let first = c
            .clone()
            .list_experiments(pb::ListExperimentsRequest::default())
            .await
            .expect("list")
            .into_inner();
        assert_eq!(first.names.len(), 100, "{backend:?}");
        assert_eq!(first.names[..], want[..100], "{backend:?}");
        assert!(!first.next_page_token.is_empty());

        // The default pages through the 64 KiB limit, and the largest pages
        // (1,000 names with their listings, more than 64 KiB) without it:
        // every name once, in order, either way.
        let unlimited = server.client().await;
        for (size, client, want_pages) in [(0, &c, 11), (1000, &unlimited, 2)] {
            let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
            loop {
                let page = client
                    .clone()
                    .list_experiments(pb::ListExperimentsRequest {
                        page_size: size,
                        page_token: token,
                    })
                    .await
                    .expect("a page")
                    .into_inner();
                pages += 1;
                assert_eq!(page.names.len(), page.experiments.len(), "{backend:?}");
                seen.extend(page.names);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            assert_eq!(pages, want_pages, "{backend:?} page_size {size}");
            assert_eq!(seen, want, "{backend:?} page_size {size}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_page_requests_name_the_field() {
    let server = TestServer::start(common::Backend::Memory).await;
    let c = server.client().await;
    for (size, token, field) in [
        (1001, "", "page_size"),
        (-1, "", "page_size"),
        (10, "not a token", "page_token"),
        (10, "AAAA", "page_token"),
    ] {
        let e = c
            .clone()
            .list_experiments(pb::ListExperimentsRequest {
                page_size: size,
                page_token: token.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{size} {token:?}");
        assert!(e.message().starts_with(field), "{}", e.message());
    }
    // An empty list: no names, no next page.
    let empty = c
        .clone()
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(empty.names.is_empty() && empty.next_page_token.is_empty());

    // Studies page the same way.
    let mut o = OptimizerClient::connect(server.url.clone())
        .await
        .expect("connect");
    for i in 0..5 {
        o.create_study(pb::CreateStudyRequest {
            name: format!("s{i}"),
            parameters: vec![pb::Parameter {
                name: "x".into(),
                kind: Some(pb::parameter::Kind::Float(pb::FloatRange {
                    low: 0.0,
                    high: 1.0,
                    log: false,
                    step: 0.0,
                })),
            }],
            objective: Some(pb::Objective {
                name: "loss".into(),
                goal: pb::Goal::Minimize as i32,
            }),
            ..Default::default()
        })
        .await
        .expect("create study");
    }
    let p1 = o
        .list_studies(pb::ListStudiesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(p1.names, ["s0", "s1"]);
    let p2 = o
        .list_studies(pb::ListStudiesRequest {
            page_size: 2,
            page_token: p1.next_page_token,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(p2.names, ["s2", "s3"]);
    let e = o
        .list_studies(pb::ListStudiesRequest {
            page_size: 5000,
            page_token: String::new(),
        })
        .await
        .expect_err("too large");
    assert_eq!(e.code(), Code::InvalidArgument);
}
