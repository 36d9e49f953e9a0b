// Prints each certificate's subject as Java's X500Principal.getName() gives it (RFC 2253),
// one per line: the reference for zoolog's x509 ids (test_tls_vs_zookeeper.py runs this file
// from source: `java X500Names.java CERT...`).
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;

public class X500Names {
    public static void main(String[] args) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        for (String path : args) {
            try (FileInputStream in = new FileInputStream(path)) {
                X509Certificate cert = (X509Certificate) factory.generateCertificate(in);
                System.out.println(cert.getSubjectX500Principal().getName());
            }
        }
    }
}
