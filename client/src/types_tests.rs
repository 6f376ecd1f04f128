use super::*;
use serde_json::json;

#[test]
fn index_cli_form() {
    assert_eq!(
        Index::parse("email:unique").unwrap(),
        Index {
            path: "email".into(),
            unique: true
        }
    );
    assert_eq!(
        Index::parse("a.b").unwrap(),
        Index {
            path: "a.b".into(),
            unique: false
        }
    );
    assert!(Index::parse("email:uniq").is_err());
    assert!(Index::parse(":unique").is_err());
    assert!(Index::parse("").is_err());
}

#[test]
fn collection_config_round_trip() {
    let c = CollectionConfig::new("people", json!({"type": "object"})).index("email", true);
    let p = c.to_pb().unwrap();
    assert_eq!(p.name, "people");
    assert_eq!(
        serde_json::from_slice::<Value>(&p.schema).unwrap(),
        json!({"type": "object"})
    );
    assert_eq!(p.indexes.len(), 1);
    assert!(p.indexes[0].unique);
    let back = CollectionConfig::from_pb(pb::GetCollectionInfoReply {
        name: p.name,
        schema: p.schema,
        indexes: p.indexes,
        write_validator: p.write_validator,
        read_filter: p.read_filter,
    })
    .unwrap();
    assert_eq!(back, c);
    // No schema: the server's default.
    assert!(
        CollectionConfig::new("x", Value::Null)
            .to_pb()
            .unwrap()
            .schema
            .is_empty()
    );
    // A config read from a file (serde names).
    let f: CollectionConfig =
        serde_json::from_value(json!({"name": "n", "indexes": [{"path": "p"}]})).unwrap();
    assert_eq!(f.indexes[0], Index::parse("p").unwrap());
}

#[test]
fn query_builder_emits_go_threads_json() {
    let q = Query::field("age")
        .ge(18)
        .and("name")
        .eq("Ada")
        .or(Query::field("admin").eq(true))
        .sort("age", true)
        .limit(10)
        .skip(2)
        .seek("01abc")
        .use_index("name");
    assert_eq!(
        q.to_json(),
        json!({
            "ands": [
                {"fieldPath": "age", "operation": 4, "value": {"float": 18.0}},
                {"fieldPath": "name", "operation": 0, "value": {"string": "Ada"}}
            ],
            "ors": [{"ands": [{"fieldPath": "admin", "operation": 0, "value": {"bool": true}}]}],
            "sort": {"fieldPath": "age", "desc": true},
            "limit": 10, "skip": 2, "seek": "01abc", "index": "name"
        })
    );
    let ops: Vec<u64> = [
        Query::field("x").ne(1.5),
        Query::field("x").gt(1),
        Query::field("x").lt(1),
        Query::field("x").le(String::from("s")),
    ]
    .iter()
    .map(|q| q.to_json()["ands"][0]["operation"].as_u64().unwrap())
    .collect();
    assert_eq!(ops, [1, 2, 3, 5]);
    assert_eq!(Query::all().to_json(), json!({}));
    assert_eq!(Query::from_json(Value::Null).unwrap(), Query::all());
    assert!(Query::from_json(json!([1])).is_err());
    assert_eq!(
        Query::from_json(json!({"limit": 1})).unwrap().to_json(),
        json!({"limit": 1})
    );
}

#[test]
fn changes_and_filters() {
    use pb::listen_reply::Action as A;
    let c = Change::from_pb(pb::ListenReply {
        collection_name: "people".into(),
        instance_id: "id1".into(),
        action: A::Save as i32,
        instance: br#"{"_id":"id1","name":"Ada"}"#.to_vec(),
    })
    .unwrap();
    assert_eq!(c.action, Action::Save);
    #[derive(Deserialize)]
    struct P {
        name: String,
    }
    assert_eq!(c.instance_as::<P>().unwrap().unwrap().name, "Ada");
    let d = Change::from_pb(pb::ListenReply {
        collection_name: "people".into(),
        instance_id: "id1".into(),
        action: A::Delete as i32,
        instance: vec![],
    })
    .unwrap();
    assert_eq!((d.action, d.instance.clone()), (Action::Delete, None));
    assert!(d.instance_as::<P>().unwrap().is_none());
    let bad = pb::ListenReply {
        action: 9,
        ..Default::default()
    };
    assert!(matches!(Change::from_pb(bad), Err(Error::Protocol(_))));
    assert_eq!(Action::Create.to_string(), "create");

    let f = ListenFilter {
        action: Some(Action::Delete),
        ..ListenFilter::collection("people")
    }
    .to_pb();
    assert_eq!(f.collection_name, "people");
    assert_eq!(f.instance_id, "");
    assert_eq!(f.action, pb::listen_request::filter::Action::Delete as i32);
    assert_eq!(ListenFilter::default().to_pb().action, 0);
}

#[test]
fn db_info_decodes_key_and_addresses() {
    let mut rng = threads_protocol::rng::seeded(7);
    let id = ThreadId::random(threads_protocol::id::Variant::Raw, &mut rng);
    let key = ThreadKey::random(&mut rng, true);
    let host: multiaddr::Multiaddr =
        "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWBHvsSSKHeragACma3HUodK5FcPUpXQ8c7yqQW9QiEoDX"
            .parse()
            .unwrap();
    let addr = ThreadAddr::new(host, id);
    let info = DbInfo::from_pb(
        id,
        pb::GetDbInfoReply {
            addrs: vec![addr.to_bytes()],
            key: key.to_bytes(),
            name: "n".into(),
        },
    )
    .unwrap();
    assert_eq!(info.key, key);
    assert_eq!(info.addrs, vec![addr]);
    let bad = pb::GetDbInfoReply {
        key: vec![1, 2, 3],
        ..Default::default()
    };
    assert!(DbInfo::from_pb(id, bad).is_err());
}

#[test]
fn instance_bytes() {
    let b = to_json_bytes(&[json!({"a": 1}), json!({"b": 2})]).unwrap();
    let back: Vec<Value> = from_json_bytes(&b).unwrap();
    assert_eq!(back, vec![json!({"a": 1}), json!({"b": 2})]);
    assert!(from_json_bytes::<Value>(&[b"{".to_vec()]).is_err());
}
