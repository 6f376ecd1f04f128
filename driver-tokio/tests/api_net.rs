//! The Net API (`threads.net.pb.API`) through a real tonic client against in-process nodes on
//! 127.0.0.1: a happy path through every RPC (Subscribe seeing CreateRecord's record,
//! AddThread and AddReplicator between two nodes), database threads refusing DeleteThread and
//! CreateRecord, and bad input for every RPC (status codes and texts, and nothing changed).

mod common;
#[path = "common/net_api.rs"]
mod net_api;

use net_api::*;
use threads_driver_tokio::api::proto::db as dbpb;
use threads_driver_tokio::api::proto::net as pb;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::record;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_happy_path() {
    let a = Setup::new().await;
    let b = Setup::new().await;
    let (mut ca, mut cb) = (a.client.clone(), b.client.clone());

    // GetHostID and GetToken.
    let host = ca.get_host_id(pb::GetHostIdRequest {}).await.unwrap();
    assert_eq!(
        host.into_inner().peer_id,
        a.node.peer_id().as_bytes().to_vec()
    );
    let user = PrivateKey::from_seed([5; 32]);
    let token = get_token(&mut ca, &user).await;

    // CreateThread without keys: a random 64-byte key and the host's log.
    let t1 = random_id(1);
    let info = create_thread(&mut ca, t1, None).await;
    assert_eq!(info.thread_id, t1.to_vec());
    assert_eq!(info.thread_key.len(), 64);
    assert_eq!(info.logs.len(), 1);
    let log = info.logs[0].clone();
    assert!(!log.priv_key.is_empty() && log.head.is_empty());
    assert_eq!(log.counter, vec![0; 8]);
    assert_eq!(log.pub_key.len(), 36);
    assert!(!log.addrs.is_empty() && !info.addrs.is_empty());

    // Subscribe, then CreateRecord: the subscriber gets the record.
    let mut sub = ca
        .subscribe(pb::SubscribeRequest {
            thread_i_ds: vec![t1.to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    let created = create_record(&mut ca, t1, 1).await;
    assert_eq!(
        (created.thread_id.clone(), created.log_id.clone()),
        (t1.to_vec(), log.id.clone())
    );
    let got = next(&mut sub).await;
    assert_eq!(got, created);
    let rec = created.record.clone().unwrap();
    let info = get_thread(&mut ca, t1).await.unwrap();
    assert_eq!(info.logs[0].head, cid_of(&rec));
    assert_eq!(info.logs[0].counter, hex(b"0200000000000000"));
    let second = create_record(&mut ca, t1, 2).await;
    assert_eq!(next(&mut sub).await, second);
    let info = get_thread(&mut ca, t1).await.unwrap();
    assert_eq!(info.logs[0].counter, hex(b"0400000000000000"));

    // GetRecord by CID; AddRecord of a known record is a no-op.
    let fetched = ca
        .get_record(pb::GetRecordRequest {
            thread_id: t1.to_vec(),
            record_id: cid_of(&rec),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.record.as_ref(), Some(&rec));
    ca.add_record(pb::AddRecordRequest {
        thread_id: t1.to_vec(),
        log_id: log.id.clone(),
        record: Some(rec.clone()),
    })
    .await
    .unwrap();
    assert_eq!(get_thread(&mut ca, t1).await.unwrap(), info);
    ca.pull_thread(pb::PullThreadRequest {
        thread_id: t1.to_vec(),
    })
    .await
    .unwrap();

    // CreateThread with a token, a given key and a public-only log key; AddRecord of a
    // record that log's owner made elsewhere.
    let t2 = random_id(2);
    let key = vec![7u8; 64];
    let owner = PrivateKey::from_seed([8; 32]);
    let info2 = ca
        .create_thread(with_token(
            pb::CreateThreadRequest {
                thread_id: t2.to_vec(),
                keys: Some(pb::Keys {
                    thread_key: key.clone(),
                    log_key: owner.public().to_protobuf().to_vec(),
                }),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info2.thread_key, key);
    assert_eq!(info2.logs.len(), 1);
    assert!(info2.logs[0].priv_key.is_empty());
    let foreign_log = owner.public().peer_id().as_bytes().to_vec();
    assert_eq!(info2.logs[0].id, foreign_log);
    let foreign = foreign_record(&t2, &key, &owner, 3);
    ca.add_record(pb::AddRecordRequest {
        thread_id: t2.to_vec(),
        log_id: foreign_log.clone(),
        record: Some(foreign.clone()),
    })
    .await
    .unwrap();
    assert_eq!(head_of(&mut ca, t2, &foreign_log).await, cid_of(&foreign));
    // The token's identity writes its own log (made on demand, with a private key here).
    let mine = ca
        .create_record(with_token(
            pb::CreateRecordRequest {
                thread_id: t2.to_vec(),
                body: cbor(4),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(mine.log_id, foreign_log);
    assert_eq!(get_thread(&mut ca, t2).await.unwrap().logs.len(), 2);

    // AddThread on B from A's thread address with the full key: B gets A's records.
    let mut sub_b = cb
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let a_info = get_thread(&mut ca, t1).await.unwrap();
    let b_info = cb
        .add_thread(pb::AddThreadRequest {
            addr: a_info.addrs[0].clone(),
            keys: Some(pb::Keys {
                thread_key: a_info.thread_key.clone(),
                log_key: Vec::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b_info.thread_key, a_info.thread_key);
    assert!(
        b_info.logs.iter().any(|l| !l.priv_key.is_empty()),
        "B's own log"
    );
    let head = cid_of(second.record.as_ref().unwrap());
    common::eventually("B has A's log", common::CONVERGE_WITHIN, || {
        let (mut cb, log, head) = (cb.clone(), log.id.clone(), head.clone());
        async move { head_of(&mut cb, t1, &log).await == head }
    })
    .await;
    let seen = next(&mut sub_b).await;
    assert_eq!(seen.thread_id, t1.to_vec());
    assert_eq!(seen.log_id, log.id);

    // AddReplicator: B gets the service key only, and A's records.
    let t3 = random_id(3);
    create_thread(&mut ca, t3, None).await;
    let r3 = create_record(&mut ca, t3, 5).await;
    let b_addr = b.handle().addresses().await.unwrap()[0].to_vec();
    let peer = ca
        .add_replicator(pb::AddReplicatorRequest {
            thread_id: t3.to_vec(),
            addr: b_addr,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(peer.peer_id, b.node.peer_id().as_bytes().to_vec());
    let head = cid_of(r3.record.as_ref().unwrap());
    common::eventually("B replicates t3", common::CONVERGE_WITHIN, || {
        let (mut cb, log, head) = (cb.clone(), r3.log_id.clone(), head.clone());
        async move { head_of(&mut cb, t3, &log).await == head }
    })
    .await;
    let replicated = get_thread(&mut cb, t3).await.unwrap();
    assert_eq!(replicated.thread_key.len(), 32);
    // A replicator holds no read key: it cannot create records.
    assert_status(
        cb.create_record(pb::CreateRecordRequest {
            thread_id: t3.to_vec(),
            body: cbor(6),
        })
        .await,
        Code::FailedPrecondition,
        "only the service key",
    );

    // DeleteThread of a Net API thread; it is gone.
    ca.delete_thread(pb::DeleteThreadRequest {
        thread_id: t2.to_vec(),
    })
    .await
    .unwrap();
    assert_status(
        get_thread(&mut ca, t2).await,
        Code::NotFound,
        "thread not found",
    );

    // A database's thread: readable here, but not deleted or written with raw records; and
    // Net API threads are not databases.
    let db = random_id(4);
    let mut dba = a.db.clone();
    dba.new_db(dbpb::NewDbRequest {
        db_id: db.to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(get_thread(&mut ca, db).await.unwrap().thread_key.len(), 64);
    assert_status(
        ca.create_record(pb::CreateRecordRequest {
            thread_id: db.to_vec(),
            body: cbor(1),
        })
        .await,
        Code::FailedPrecondition,
        "cannot create record: thread is in use",
    );
    assert_status(
        ca.delete_thread(pb::DeleteThreadRequest {
            thread_id: db.to_vec(),
        })
        .await,
        Code::FailedPrecondition,
        "cannot delete thread: thread is in use",
    );
    let dbs = dba
        .list_d_bs(dbpb::ListDBsRequest {})
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<Vec<u8>> = dbs.dbs.into_iter().map(|d| d.db_id).collect();
    assert_eq!(listed, vec![db.to_vec()]);

    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let a = Setup::new().await;
    let mut c = a.client.clone();
    let t = random_id(10);
    let info = create_thread(&mut c, t, None).await;
    let rec = create_record(&mut c, t, 1).await.record.unwrap();
    let log = info.logs[0].id.clone();
    let before = get_thread(&mut c, t).await.unwrap();
    let threads = a.handle().threads().await.unwrap();
    let bad_id = vec![1u8, 0x55];
    let unknown = random_id(11);
    let id_text = "expected random id bytes but there are none";

    // CreateThread.
    let keys = |thread_key: Vec<u8>, log_key: Vec<u8>| {
        Some(pb::Keys {
            thread_key,
            log_key,
        })
    };
    for (id, keys, code, text) in [
        (bad_id.clone(), None, Code::InvalidArgument, id_text),
        (
            unknown.to_vec(),
            keys(vec![1; 33], vec![]),
            Code::InvalidArgument,
            "invalid thread-key: invalid key",
        ),
        (
            unknown.to_vec(),
            keys(vec![], vec![1, 2, 3]),
            Code::InvalidArgument,
            "invalid log-key",
        ),
        (t.to_vec(), None, Code::AlreadyExists, "log already exists"),
    ] {
        assert_status(
            c.create_thread(pb::CreateThreadRequest {
                thread_id: id,
                keys,
            })
            .await,
            code,
            text,
        );
    }

    // AddThread.
    let own = before.addrs[0].clone();
    let mut own_unknown = own.clone();
    let tail = own_unknown.len() - t.as_bytes().len();
    own_unknown.truncate(tail);
    own_unknown.extend_from_slice(unknown.as_bytes());
    let full = keys(before.thread_key.clone(), vec![]);
    for (addr, keys, code, text) in [
        (
            vec![1, 2, 3],
            full.clone(),
            Code::InvalidArgument,
            "invalid addr",
        ),
        (
            own.clone(),
            None,
            Code::InvalidArgument,
            "invalid thread-key",
        ),
        (
            own.clone(),
            keys(vec![9; 20], vec![]),
            Code::InvalidArgument,
            "invalid thread-key: invalid key",
        ),
        (
            own_unknown,
            full.clone(),
            Code::NotFound,
            "cannot retrieve thread from self: thread not found",
        ),
    ] {
        assert_status(
            c.add_thread(pb::AddThreadRequest { addr, keys }).await,
            code,
            text,
        );
    }

    // GetThread, PullThread, DeleteThread.
    assert_status(
        get_thread(
            &mut c,
            ThreadId::random(Variant::Raw, &mut threads_protocol::rng::seeded(12)),
        )
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.get_thread(pb::GetThreadRequest {
            thread_id: bad_id.clone(),
        })
        .await,
        Code::InvalidArgument,
        id_text,
    );
    assert_status(
        c.pull_thread(pb::PullThreadRequest {
            thread_id: unknown.to_vec(),
        })
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.pull_thread(pb::PullThreadRequest {
            thread_id: bad_id.clone(),
        })
        .await,
        Code::InvalidArgument,
        id_text,
    );
    assert_status(
        c.delete_thread(pb::DeleteThreadRequest {
            thread_id: unknown.to_vec(),
        })
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.delete_thread(pb::DeleteThreadRequest {
            thread_id: bad_id.clone(),
        })
        .await,
        Code::InvalidArgument,
        id_text,
    );

    // AddReplicator.
    let peer_addr = a.handle().addresses().await.unwrap()[0].to_vec();
    let no_peer: Vec<u8> = "/ip4/127.0.0.1/tcp/1"
        .parse::<libp2p::Multiaddr>()
        .unwrap()
        .to_vec();
    for (id, addr, code, text) in [
        (
            bad_id.clone(),
            peer_addr.clone(),
            Code::InvalidArgument,
            id_text,
        ),
        (
            t.to_vec(),
            vec![0xff, 0xff],
            Code::InvalidArgument,
            "invalid addr",
        ),
        (
            t.to_vec(),
            no_peer,
            Code::InvalidArgument,
            "names no /p2p peer",
        ),
        (
            unknown.to_vec(),
            peer_addr,
            Code::NotFound,
            "thread not found",
        ),
    ] {
        assert_status(
            c.add_replicator(pb::AddReplicatorRequest {
                thread_id: id,
                addr,
            })
            .await,
            code,
            text,
        );
    }

    // CreateRecord.
    for (id, body, code, text) in [
        (bad_id.clone(), cbor(1), Code::InvalidArgument, id_text),
        (
            t.to_vec(),
            b"not cbor".to_vec(),
            Code::InvalidArgument,
            "invalid body: not dag-cbor",
        ),
        (
            t.to_vec(),
            Vec::new(),
            Code::InvalidArgument,
            "invalid body",
        ),
        (
            unknown.to_vec(),
            cbor(1),
            Code::NotFound,
            "thread not found",
        ),
    ] {
        assert_status(
            c.create_record(pb::CreateRecordRequest {
                thread_id: id,
                body,
            })
            .await,
            code,
            text,
        );
    }

    // AddRecord.
    let mut tampered = rec.clone();
    let last = tampered.body_node.len() - 1;
    tampered.body_node[last] ^= 1;
    let stranger = PrivateKey::from_seed([3; 32]);
    let key = before.thread_key.clone();
    let skipping = {
        // Counter 1 of an unknown log is fine; of the known log it would not follow the head.
        foreign_record(&t, &key, &stranger, 2)
    };
    let stranger_log = stranger.public().peer_id().as_bytes().to_vec();
    for (id, log_id, record, code, text) in [
        (
            bad_id.clone(),
            log.clone(),
            Some(rec.clone()),
            Code::InvalidArgument,
            id_text,
        ),
        (
            t.to_vec(),
            vec![1, 2, 3],
            Some(rec.clone()),
            Code::InvalidArgument,
            "invalid log id",
        ),
        (
            t.to_vec(),
            log.clone(),
            None,
            Code::InvalidArgument,
            "record is required",
        ),
        (
            t.to_vec(),
            stranger_log,
            Some(skipping.clone()),
            Code::NotFound,
            "log not found",
        ),
        (
            t.to_vec(),
            log.clone(),
            Some(tampered),
            Code::InvalidArgument,
            "invalid record",
        ),
        (
            t.to_vec(),
            log.clone(),
            Some(skipping),
            Code::InvalidArgument,
            "invalid record",
        ),
        (
            unknown.to_vec(),
            log.clone(),
            Some(rec.clone()),
            Code::NotFound,
            "thread not found",
        ),
    ] {
        assert_status(
            c.add_record(pb::AddRecordRequest {
                thread_id: id,
                log_id,
                record,
            })
            .await,
            code,
            text,
        );
    }

    // GetRecord.
    for (id, record_id, code, text) in [
        (bad_id.clone(), cid_of(&rec), Code::InvalidArgument, id_text),
        (
            t.to_vec(),
            vec![1, 2, 3],
            Code::InvalidArgument,
            "invalid record id",
        ),
        (
            t.to_vec(),
            record::block_cid(b"nothing").to_bytes(),
            Code::NotFound,
            "record not found",
        ),
        (
            unknown.to_vec(),
            cid_of(&rec),
            Code::NotFound,
            "thread not found",
        ),
    ] {
        assert_status(
            c.get_record(pb::GetRecordRequest {
                thread_id: id,
                record_id,
            })
            .await,
            code,
            text,
        );
    }

    // Subscribe.
    assert_status(
        c.subscribe(pb::SubscribeRequest {
            thread_i_ds: vec![t.to_vec(), bad_id.clone()],
        })
        .await,
        Code::InvalidArgument,
        id_text,
    );

    // Tokens: a bad authorization string, and the challenge flow's first step.
    let mut r = Request::new(pb::GetHostIdRequest {});
    r.metadata_mut()
        .insert("authorization", "bearer".parse().unwrap());
    assert_status(
        c.get_host_id(r).await,
        Code::Unauthenticated,
        "Bad authorization string",
    );
    assert_status(
        c.get_thread(with_token(
            pb::GetThreadRequest {
                thread_id: t.to_vec(),
            },
            "a.b.c",
        ))
        .await,
        Code::Unknown,
        "thread token not found",
    );
    let (tx, rx) = mpsc::channel(1);
    tx.send(pb::GetTokenRequest {
        payload: Some(TokenReq::Signature(vec![0; 64])),
    })
    .await
    .unwrap();
    let mut replies = c
        .get_token(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let err = tokio::time::timeout(STEP, replies.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "Key is required")
    );

    // Nothing changed.
    assert_eq!(get_thread(&mut c, t).await.unwrap(), before);
    assert_eq!(a.handle().threads().await.unwrap(), threads);
    a.stop().await;
}
