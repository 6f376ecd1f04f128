//! Bad input for every RPC kind of the client API (`threads.pb.API`), through a real tonic
//! client against an in-process node on 127.0.0.1: status codes, message texts, and nothing
//! changed.

mod common;
#[path = "common/db_api.rs"]
mod db_api;

use db_api::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = Setup::new().await;
    let mut c = s.client.clone();
    let db = random_id(4);
    new_db(&mut c, db, "", &None).await;
    c.new_collection(pb::NewCollectionRequest {
        db_id: db.to_vec(),
        config: Some(people_config()),
    })
    .await
    .unwrap();
    c.create(pb::CreateRequest {
        db_id: db.to_vec(),
        collection_name: "people".into(),
        instances: vec![json_bytes(
            json!({"_id": "alice", "name": "Alice", "email": "a@x"}),
        )],
    })
    .await
    .unwrap();
    let digest = s.handle().reader().state_digest(db).await.unwrap();
    let bad_id = vec![0x02, 0xfa, 0x27]; // "zzzz": version 2
    let version_msg = "expected 1 as the id version number, got: 2";
    let unknown = random_id(99);

    // Databases.
    assert_status(
        c.new_db(pb::NewDbRequest {
            db_id: bad_id.clone(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        version_msg,
    );
    assert_status(
        c.new_db(pb::NewDbRequest {
            db_id: vec![0x01, 0x55],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "expected random id bytes but there are none",
    );
    assert_status(
        c.new_db(pb::NewDbRequest {
            db_id: db.to_vec(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "db already exists",
    );
    let fresh = random_id(5);
    for (req, text) in [
        (
            pb::NewDbRequest {
                db_id: fresh.to_vec(),
                name: "a--b".into(),
                ..Default::default()
            },
            "name may only contain alphanumeric characters",
        ),
        (
            pb::NewDbRequest {
                db_id: fresh.to_vec(),
                key: vec![1; 10],
                ..Default::default()
            },
            "invalid key",
        ),
        (
            pb::NewDbRequest {
                db_id: fresh.to_vec(),
                key: vec![1; 32],
                ..Default::default()
            },
            "thread read key is required",
        ),
        (
            pb::NewDbRequest {
                db_id: fresh.to_vec(),
                log_key: vec![1, 2, 3],
                ..Default::default()
            },
            "invalid log-key",
        ),
        (
            pb::NewDbRequest {
                db_id: fresh.to_vec(),
                collections: vec![pb::CollectionConfig {
                    name: "x".into(),
                    schema: b"{nope".to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "invalid schema",
        ),
        (
            pb::NewDbRequest {
                db_id: fresh.to_vec(),
                collections: vec![pb::CollectionConfig {
                    name: "x".into(),
                    indexes: vec![pb::Index {
                        path: "_id".into(),
                        unique: true,
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
            "cannot create custom index on _id",
        ),
    ] {
        assert_status(c.new_db(req).await, Code::InvalidArgument, text);
    }
    assert_status(
        c.get_db_info(pb::GetDbInfoRequest {
            db_id: fresh.to_vec(),
        })
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.new_db_from_addr(pb::NewDbFromAddrRequest {
            addr: vec![1, 2, 3],
            key: vec![0; 64],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "invalid addr",
    );
    let own = c
        .get_db_info(pb::GetDbInfoRequest { db_id: db.to_vec() })
        .await
        .unwrap()
        .into_inner();
    assert_status(
        c.new_db_from_addr(pb::NewDbFromAddrRequest {
            addr: own.addrs[0].clone(),
            key: own.key.clone(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "db already exists",
    );
    assert_status(
        c.new_db_from_addr(pb::NewDbFromAddrRequest {
            addr: own.addrs[0].clone(),
            key: vec![0; 33],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "invalid key",
    );
    assert_status(
        c.get_db_info(pb::GetDbInfoRequest {
            db_id: bad_id.clone(),
        })
        .await,
        Code::InvalidArgument,
        version_msg,
    );
    assert_status(
        c.delete_db(pb::DeleteDbRequest {
            db_id: unknown.to_vec(),
        })
        .await,
        Code::NotFound,
        "thread not found",
    );

    // Collections.
    let new_coll = |config: Option<pb::CollectionConfig>| pb::NewCollectionRequest {
        db_id: db.to_vec(),
        config,
    };
    assert_status(
        c.new_collection(new_coll(None)).await,
        Code::InvalidArgument,
        "config is required",
    );
    assert_status(
        c.new_collection(new_coll(Some(people_config()))).await,
        Code::AlreadyExists,
        "collection already registered",
    );
    let mut bad_name = people_config();
    bad_name.name = "-people".into();
    assert_status(
        c.new_collection(new_coll(Some(bad_name))).await,
        Code::InvalidArgument,
        "name may only contain",
    );
    let mut bad_path = people_config();
    bad_path.name = "other".into();
    bad_path.indexes[0].path = "nowhere".into();
    assert_status(
        c.new_collection(new_coll(Some(bad_path))).await,
        Code::InvalidArgument,
        "collection schema does not contain path",
    );
    let mut missing = people_config();
    missing.name = "nobody".into();
    assert_status(
        c.update_collection(pb::UpdateCollectionRequest {
            db_id: db.to_vec(),
            config: Some(missing),
        })
        .await,
        Code::NotFound,
        "collection not found",
    );
    assert_status(
        c.new_collection(pb::NewCollectionRequest {
            db_id: unknown.to_vec(),
            config: Some(people_config()),
        })
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.delete_collection(pb::DeleteCollectionRequest {
            db_id: db.to_vec(),
            name: "nobody".into(),
        })
        .await,
        Code::NotFound,
        "collection not found",
    );
    assert_status(
        c.get_collection_info(pb::GetCollectionInfoRequest {
            db_id: db.to_vec(),
            name: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "collection name is required",
    );
    assert_status(
        c.get_collection_indexes(pb::GetCollectionIndexesRequest {
            db_id: unknown.to_vec(),
            name: "people".into(),
        })
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.list_collections(pb::ListCollectionsRequest {
            db_id: bad_id.clone(),
        })
        .await,
        Code::InvalidArgument,
        version_msg,
    );

    // Instances.
    let create = |coll: &str, instances: Vec<Vec<u8>>| pb::CreateRequest {
        db_id: db.to_vec(),
        collection_name: coll.into(),
        instances,
    };
    assert_status(
        c.create(create("people", vec![b"{not json".to_vec()]))
            .await,
        Code::InvalidArgument,
        "invalid instance 0: not JSON",
    );
    assert_status(
        c.create(create("people", vec![b"[1]".to_vec()])).await,
        Code::InvalidArgument,
        "must be a JSON object",
    );
    assert_status(
        c.create(create("people", vec![])).await,
        Code::InvalidArgument,
        "no instances given",
    );
    assert_status(
        c.create(create("nobody", vec![json_bytes(json!({"name": "x"}))]))
            .await,
        Code::NotFound,
        "collection not found",
    );
    assert_status(
        c.create(create(
            "people",
            vec![json_bytes(json!({"_id": "alice", "name": "again"}))],
        ))
        .await,
        Code::AlreadyExists,
        "can't create already existing instance",
    );
    // All or nothing: the good instance before the bad one is not written either.
    assert_status(
        c.create(create(
            "people",
            vec![
                json_bytes(json!({"name": "good", "email": "g@x"})),
                json_bytes(json!({"name": 42})),
            ],
        ))
        .await,
        Code::InvalidArgument,
        "schema",
    );
    assert_status(
        c.create(create(
            "people",
            vec![json_bytes(json!({"name": "dup", "email": "a@x"}))],
        ))
        .await,
        Code::InvalidArgument,
        "unique constraint violation",
    );
    assert_status(
        c.save(pb::SaveRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
            instances: vec![json_bytes(json!({"name": "no id"}))],
        })
        .await,
        Code::InvalidArgument,
        "missing _id attribute",
    );
    assert_status(
        c.delete(pb::DeleteRequest {
            db_id: db.to_vec(),
            collection_name: "nobody".into(),
            instance_i_ds: vec!["alice".into()],
        })
        .await,
        Code::NotFound,
        "collection not found",
    );
    assert_status(
        c.verify(pb::VerifyRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
            instances: vec![json_bytes(json!({"_id": "alice", "name": 5}))],
        })
        .await,
        Code::InvalidArgument,
        "schema",
    );
    assert_status(
        c.has(pb::HasRequest {
            db_id: unknown.to_vec(),
            collection_name: "people".into(),
            instance_i_ds: vec!["alice".into()],
        })
        .await,
        Code::NotFound,
        "thread not found",
    );
    assert_status(
        c.find_by_id(pb::FindByIdRequest {
            db_id: db.to_vec(),
            collection_name: "people".into(),
            instance_id: "nobody".into(),
        })
        .await,
        Code::NotFound,
        "instance not found",
    );
    let find = |q: &[u8]| pb::FindRequest {
        db_id: db.to_vec(),
        collection_name: "people".into(),
        query_json: q.to_vec(),
    };
    for (q, text) in [
        (&b"{"[..], "invalid query: malformed JSON"),
        (
            br#"{"ands":[{"fieldPath":"name","operation":9,"value":{"string":"x"}}]}"#,
            "invalid query: unknown operation 9",
        ),
        (
            br#"{"ands":[{"fieldPath":"name","operation":0,"value":{"string":"x","bool":true}}]}"#,
            "value type should describe exactly one type",
        ),
        (br#"{"ands":"x"}"#, "invalid query"),
        (br#"{"index":"age"}"#, "index not found"),
    ] {
        assert_status(c.find(find(q)).await, Code::InvalidArgument, text);
    }
    // Oversized messages are refused while decoding.
    let big = json_bytes(json!({"name": "x".repeat(MAX_MESSAGE)}));
    let e = c.create(create("people", vec![big])).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("too large"), "{}", e.message());

    // Listen.
    assert_status(
        c.listen(pb::ListenRequest {
            db_id: db.to_vec(),
            filters: vec![pb::listen_request::Filter {
                action: 7,
                ..Default::default()
            }],
        })
        .await,
        Code::InvalidArgument,
        "invalid filter action 7",
    );
    assert_status(
        c.listen(pb::ListenRequest {
            db_id: unknown.to_vec(),
            filters: vec![],
        })
        .await,
        Code::NotFound,
        "thread not found",
    );

    // Authorization metadata and tokens.
    let list = |auth: &str| {
        let mut r = Request::new(pb::ListDBsRequest {});
        r.metadata_mut()
            .insert("authorization", auth.parse().unwrap());
        r
    };
    assert_status(
        c.list_d_bs(list("bearer")).await,
        Code::Unauthenticated,
        "Bad authorization string",
    );
    assert_status(
        c.list_d_bs(list("basic abc")).await,
        Code::Unauthenticated,
        "Request unauthenticated with bearer",
    );
    assert_status(
        c.list_d_bs(list("bearer not-a-jwt")).await,
        Code::Unknown,
        "thread token not found",
    );
    let foreign = threads_driver_tokio::api::auth::issue(&user(9), &user(1).public(), None);
    assert_status(
        c.list_d_bs(list(&format!("bearer {foreign}"))).await,
        Code::Unknown,
        "invalid thread token",
    );
    token_flow_errors(&mut c).await;

    // Transactions.
    transaction_errors(&mut c, db).await;

    assert_eq!(
        s.handle().reader().state_digest(db).await.unwrap(),
        digest,
        "nothing changed"
    );
    assert_eq!(
        c.list_d_bs(pb::ListDBsRequest {})
            .await
            .unwrap()
            .into_inner()
            .dbs
            .len(),
        1,
        "no database was left behind"
    );
    s.stop().await;
}

async fn token_flow_errors(c: &mut Client) {
    // Each case: the messages sent, the expected error.
    let key = user(3);
    let cases = vec![
        (
            vec![TokenReq::Signature(vec![0; 64])],
            Code::InvalidArgument,
            "Key is required",
        ),
        (
            vec![TokenReq::Key("bnot-a-key".into())],
            Code::InvalidArgument,
            "invalid key",
        ),
        (
            vec![
                TokenReq::Key(key.public().to_string()),
                TokenReq::Key(key.public().to_string()),
            ],
            Code::InvalidArgument,
            "Signature is required",
        ),
        (
            vec![
                TokenReq::Key(key.public().to_string()),
                TokenReq::Signature(vec![7; 64]),
            ],
            Code::Unauthenticated,
            "bad signature",
        ),
    ];
    for (msgs, code, text) in cases {
        let (tx, rx) = mpsc::channel(4);
        for m in msgs {
            tx.send(pb::GetTokenRequest { payload: Some(m) })
                .await
                .unwrap();
        }
        let mut replies = c
            .get_token(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let err = tokio::time::timeout(STEP, async {
            loop {
                match replies.message().await {
                    Ok(Some(pb::GetTokenReply {
                        payload: Some(TokenReply::Challenge(_)),
                    })) => continue,
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(e) => return e,
                }
            }
        })
        .await
        .expect("an answer in time");
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(text), "{}", err.message());
        drop(tx);
    }
}

async fn transaction_errors(c: &mut Client, db: ThreadId) {
    let start = |db: Vec<u8>, coll: &str| {
        Some(WReq::StartTransactionRequest(pb::StartTransactionRequest {
            db_id: db,
            collection_name: coll.into(),
        }))
    };
    // Bad starts end the stream with a status.
    for (first, code, text) in [
        (
            Some(WReq::HasRequest(pb::HasRequest::default())),
            Code::InvalidArgument,
            "the first message must be startTransactionRequest",
        ),
        (
            start(vec![0x02, 0xfa, 0x27], "people"),
            Code::InvalidArgument,
            "expected 1 as the id version number",
        ),
        (
            start(db.to_vec(), "fake"),
            Code::NotFound,
            "collection not found",
        ),
        (
            start(random_id(77).to_vec(), "people"),
            Code::NotFound,
            "thread not found",
        ),
    ] {
        let (tx, rx) = mpsc::channel(2);
        tx.send(pb::WriteTransactionRequest { option: first })
            .await
            .unwrap();
        assert_status(
            c.write_transaction(ReceiverStream::new(rx)).await,
            code,
            text,
        );
    }
    let (tx, rx) = mpsc::channel(2);
    tx.send(pb::ReadTransactionRequest {
        option: Some(RReq::StartTransactionRequest(pb::StartTransactionRequest {
            db_id: db.to_vec(),
            collection_name: "fake".into(),
        })),
    })
    .await
    .unwrap();
    assert_status(
        c.read_transaction(ReceiverStream::new(rx)).await,
        Code::NotFound,
        "collection not found",
    );

    // Per-operation errors go into transactionError; discard makes the end fail.
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::WriteTransactionRequest {
        option: start(db.to_vec(), "people"),
    })
    .await
    .unwrap();
    let mut replies = c
        .write_transaction(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let send = |o: WReq| {
        let tx = tx.clone();
        async move {
            tx.send(pb::WriteTransactionRequest { option: Some(o) })
                .await
                .unwrap()
        }
    };
    send(WReq::CreateRequest(pb::CreateRequest {
        instances: vec![b"nope".to_vec()],
        ..Default::default()
    }))
    .await;
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::CreateReply(r)) if r.transaction_error.contains("not JSON"))
    );
    send(WReq::CreateRequest(pb::CreateRequest {
        instances: vec![json_bytes(json!({"_id": "alice", "name": "x"}))],
        ..Default::default()
    }))
    .await;
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::CreateReply(r)) if r.transaction_error.contains("already existing instance"))
    );
    send(WReq::FindRequest(pb::FindRequest {
        query_json: b"{".to_vec(),
        ..Default::default()
    }))
    .await;
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::FindReply(r)) if r.transaction_error.contains("invalid query"))
    );
    send(WReq::FindByIdRequest(pb::FindByIdRequest {
        instance_id: "nobody".into(),
        ..Default::default()
    }))
    .await;
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::FindByIdReply(r)) if r.transaction_error.contains("instance not found"))
    );
    send(WReq::CreateRequest(pb::CreateRequest {
        instances: vec![json_bytes(json!({"name": "discarded"}))],
        ..Default::default()
    }))
    .await;
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::CreateReply(r)) if r.transaction_error.is_empty())
    );
    send(WReq::DiscardRequest(pb::DiscardRequest {})).await;
    assert!(matches!(
        next(&mut replies).await.option,
        Some(WReply::DiscardReply(_))
    ));
    // Answered normally after discard.
    send(WReq::SaveRequest(pb::SaveRequest {
        instances: vec![json_bytes(json!({"_id": "alice", "name": "Alice"}))],
        ..Default::default()
    }))
    .await;
    assert!(
        matches!(next(&mut replies).await.option, Some(WReply::SaveReply(r)) if r.transaction_error.is_empty())
    );
    drop(tx);
    let err = tokio::time::timeout(STEP, replies.message())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.message().contains("discarded/committed txn"),
        "{}",
        err.message()
    );
}
