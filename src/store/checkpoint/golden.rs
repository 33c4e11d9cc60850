//! Pinned checkpoint bodies (`checkpoint::tests::golden_body_*`,
//! `checkpoint::tests::version_1_json_bodies_still_load`). Never edit
//! these to make a test pass: a change of the bytes is a new body version.

/// The golden state's body in version 2, in hex (whitespace ignored).
pub const GOLDEN_BODY_V2: &str = "
    0100000000000000010000000000000073010000000000000073240000000000
    000030303030303030302d303365382d376231662d613139372d396162356564
    313932326465e803000000000000000100000000000000000101000000000000
    0074000000000000000000020000000000000000000000000000000400000000
    000000726f6f7400010000000000000073070000000000000073657373696f6e
    e803000000000000000000000000000000000000000000000000000000000100
    000000000000010000000000000067010400000000000000726f6f7401000000
    000000006e0a0000000000000067656e65726174696f6ee90300000000000001
    ea03000000000000000000000000000001030000000000000004000000000000
    0000000000000000000000000000000000000000000000000001000000000000
    e03f000000000000000000000003000000000000000400000000000000000000
    000000000000000000000000000000000000000000000000000000e03f000000
    0000000000010000000000000002000000000000000000000000000000000000
    00000000000000000000000000ea030000000000000300000000000000030000
    00000000000200000000000000ffffffffffffffff0000000000000000020000
    000000000001000000000000006701000000000000000400000000000000726f
    6f74000000000000000000000000000000000000000000000000000100000000
    000000010000000000000073010000000000000001000000000000006b020000
    00000000000600000000000000000100000000000000010000000000000072
";

/// The golden state's body in version 1: `serde_json` of the 0.1 model,
/// exactly as 0.1 wrote it.
pub const GOLDEN_BODY_V1: &str = r#"{"sessions":{"s":{"id":"s","trace_id":"00000000-03e8-7b1f-a197-9ab5ed1922de","started_at":1000,"ended_at":null,"run":1,"status":"Running","error":null,"metadata":{"title":"t","model":null,"provider_id":null,"agent":null,"variant":null,"prompt":null,"user_id":null,"environment":null,"version":null,"tags":null},"spans":{"0":{"span_id":"root","parent":null,"name":"s","kind":"session","start":1000,"end":null,"status":"Ok","message":null,"interrupted":false,"model":null,"finish_reason":null,"tokens":null,"cost":null,"tool":null,"input":null,"output":null,"attributes":{}},"1":{"span_id":"g","parent":"root","name":"n","kind":"generation","start":1001,"end":1002,"status":"Ok","message":null,"interrupted":false,"model":null,"finish_reason":null,"tokens":{"input":3,"output":4,"reasoning":0,"cache_read":0,"cache_write":0},"cost":0.5,"tool":null,"input":null,"output":null,"attributes":{}}},"totals":{"tokens":{"input":3,"output":4,"reasoning":0,"cache_read":0,"cache_write":0},"cost":0.5,"tool_calls":0,"generations":1,"spans":2,"elided":0},"tools":{},"loops":[],"last_time":1002,"version":3,"last_lsn":3,"next_seq":2,"head_end":18446744073709551615,"open":{},"by_id":{"root":0,"g":1},"turn":null,"turns":0,"recent_tools":[]}},"keys":{"s":{"k":2}},"applied":6,"clean_shutdown":false}"#;
