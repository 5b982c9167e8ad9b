//! `OpenVpnMakeConfig`: a zip of two client configurations, ready to use as SoftEther's are: a
//! `dev tun` one for remote access (the client gets an address from the hub) and a `dev tap`
//! one for bridging (the client is on the hub's Ethernet), each with the server's certificate
//! inline, and a short readme. The zip is stored (not compressed), as SoftEther's is. When the
//! server requires tls-crypt (ProtoOptions OpenVPN TlsCrypt), both carry its key inline too.

/// One client configuration; `tls_crypt`: the tls-crypt key file's text, to put inline.
pub fn client_config(
    dev: &str,
    host: &str,
    port: u16,
    ca_pem: &str,
    tls_crypt: Option<&str>,
) -> String {
    let purpose = if dev == "tun" {
        "remote access: the client gets an address on the Virtual Hub's network"
    } else {
        "bridging: the client is a port of the Virtual Hub's Ethernet"
    };
    let mut text = format!(
        "# OpenVPN client configuration written by Etherhub ({purpose}).\n\
         # Log in as USER@HUB or HUB\\USER (a name alone means the hub DEFAULT).\n\
         # Over TCP instead: proto tcp-client, and any of the server's TCP ports.\n\
         client\n\
         dev {dev}\n\
         proto udp\n\
         remote {host} {port}\n\
         resolv-retry infinite\n\
         nobind\n\
         persist-key\n\
         persist-tun\n\
         data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\n\
         auth-user-pass\n\
         push-peer-info\n\
         verb 3\n\
         <ca>\n{ca_pem}</ca>\n"
    );
    if let Some(key) = tls_crypt {
        text.push_str(&format!("<tls-crypt>\n{key}</tls-crypt>\n"));
    }
    text
}

const README: &str = "Etherhub: OpenVPN client configurations\r\n\
\r\n\
*_openvpn_remote_access_l3.ovpn (dev tun): for a computer or phone that joins the Virtual Hub's\r\n\
network. Its address comes from the hub (SecureNAT's DHCP server).\r\n\
\r\n\
*_openvpn_site_to_site_bridge_l2.ovpn (dev tap): for a device that bridges a network to the\r\n\
Virtual Hub at the Ethernet level.\r\n\
\r\n\
User names: USER@HUB or HUB\\USER; a user name alone logs in to the hub DEFAULT.\r\n\
The server takes OpenVPN on its UDP ports and on every TCP listener.\r\n";

/// The zip's files: the readme and the two configurations, named after the host as SoftEther
/// names them (the first 16 characters of the host name, lower case). `tls_crypt`: the
/// tls-crypt key to put in both (`None`: none).
pub fn files(
    host_name: &str,
    remote: &str,
    port: u16,
    cert_der: &[u8],
    tls_crypt: Option<&[u8; 256]>,
) -> Vec<(String, Vec<u8>)> {
    let key = tls_crypt.map(|k| etherhub_openvpn::tls_crypt::StaticKey::from_bytes(*k).to_text());
    let ca = etherhub_admin::pem_certificate(cert_der);
    let prefix: String = host_name
        .chars()
        .take(16)
        .collect::<String>()
        .to_lowercase();
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}_")
    };
    vec![
        ("readme.txt".into(), README.as_bytes().to_vec()),
        (
            format!("{prefix}openvpn_remote_access_l3.ovpn"),
            client_config("tun", remote, port, &ca, key.as_deref()).into_bytes(),
        ),
        (
            format!("{prefix}openvpn_site_to_site_bridge_l2.ovpn"),
            client_config("tap", remote, port, &ca, key.as_deref()).into_bytes(),
        ),
    ]
}

/// A zip archive of `files`, stored (PKWARE's APPNOTE: local headers, data, central
/// directory, end record; no compression, no data descriptors).
pub fn zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let crc = crc.sum();
        let offset = out.len() as u32;
        let (size, name_len) = (data.len() as u32, name.len() as u16);
        // local file header: version 1.0, no flags, stored, time 00:00 1980-01-01
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // its central directory entry
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        // extra, comment, disk, internal attributes, external attributes
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size) = (out.len() as u32, central.len() as u32);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zip_lists_its_files_and_python_reads_them_back() {
        let files = files(
            "My-Long-Server-Hostname",
            "vpn.example",
            1194,
            b"not a real cert",
            None,
        );
        assert_eq!(files[1].0, "my-long-server-h_openvpn_remote_access_l3.ovpn");
        let text = String::from_utf8(files[1].1.clone()).unwrap();
        assert!(text.contains("\ndev tun\n") && text.contains("\nremote vpn.example 1194\n"));
        assert!(text.contains("<ca>\n-----BEGIN CERTIFICATE-----\n"));
        assert!(!text.contains("tls-crypt"));
        let z = zip(&files);
        assert_eq!(&z[..4], b"PK\x03\x04");
        assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        // read back by an unzip nobody here wrote, when the machine has one
        if let Ok(dir) = tempfile::tempdir() {
            let path = dir.path().join("c.zip");
            std::fs::write(&path, &z).unwrap();
            if let Ok(out) = std::process::Command::new("busybox")
                .args(["unzip", "-o", "-q", path.to_str().unwrap(), "-d"])
                .arg(dir.path())
                .output()
            {
                if out.status.success() {
                    let back = std::fs::read(dir.path().join(&files[2].0)).unwrap();
                    assert_eq!(back, files[2].1);
                }
            }
        }
    }

    #[test]
    fn with_tls_crypt_both_configs_carry_the_key_inline() {
        let key: [u8; 256] = std::array::from_fn(|i| i as u8);
        let files = files("host", "vpn.example", 1194, b"cert", Some(&key));
        for f in &files[1..] {
            let text = String::from_utf8(f.1.clone()).unwrap();
            let block = text
                .split_once("<tls-crypt>\n")
                .and_then(|(_, rest)| rest.split_once("</tls-crypt>\n"))
                .map(|(inside, _)| inside)
                .expect("a tls-crypt block");
            let back = etherhub_openvpn::tls_crypt::StaticKey::parse(block).unwrap();
            assert_eq!(back.as_bytes(), &key);
            assert!(text.ends_with("</tls-crypt>\n"), "{text}");
        }
    }
}
