use bytes::BytesMut;
use stompkit_codec::*;

fn decode_all(v: Version, data: &[u8]) -> Result<Vec<Item>, Error> {
    let mut d = Decoder::new(v);
    let mut buf = BytesMut::from(data);
    let mut out = vec![];
    while let Some(i) = d.decode_eof(&mut buf)? {
        out.push(i);
    }
    Ok(out)
}

#[test]
fn smoke() {
    let items = decode_all(
        Version::V1_2,
        b"\nMESSAGE\r\ndestination:/queue/a\r\nx:a\\cb\ncontent-length:3\n\na\0c\0\n\r\n",
    )
    .unwrap();
    println!("{items:?}");
    assert_eq!(items.len(), 4);
    let f = items[1].clone().into_frame().unwrap();
    assert_eq!(f.header("x"), Some(&b"a:b"[..]));
    assert_eq!(f.header("destination"), Some(&b"/queue/a"[..]));
    assert_eq!(&f.body()[..], b"a\0c");
    let mut out = BytesMut::new();
    Encoder::new(Version::V1_2).encode(&f, &mut out).unwrap();
    println!("{:?}", out);
}

#[test]
fn partial_head_ending_at_a_line_end_needs_more() {
    let mut d = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::from(&b"SEND\n"[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"destination:/q\n");
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\n\0");
    assert!(matches!(d.decode(&mut buf).unwrap(), Some(Item::Frame(_))));
}
