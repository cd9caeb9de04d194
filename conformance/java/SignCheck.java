// conformance/run: sign with a keyfront token's private keys through Java's
// SunPKCS11 provider, verify with the certificates' public keys (SUN providers),
// and again through the token.
//
// usage: java -cp DIR SignCheck CONFIG PIN OUTDIR ALIAS:ALGORITHM...
// Prints one line per alias; exits 1 if any signature failed or did not verify.
// Each signature is also written to OUTDIR/ALIAS.sig for openssl to verify.

import java.io.FileOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.util.Collections;

public class SignCheck {
    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        System.out.println("provider: " + p.getName());
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        System.out.println("aliases: " + Collections.list(ks.aliases()));
        byte[] data = Files.readAllBytes(Path.of(args[2], "data"));
        int bad = 0;
        for (int i = 3; i < args.length; i++) {
            String alias = args[i].substring(0, args[i].indexOf(':'));
            String alg = args[i].substring(args[i].indexOf(':') + 1);
            try {
                PrivateKey key = (PrivateKey) ks.getKey(alias, null);
                Certificate cert = ks.getCertificate(alias);
                if (key == null || cert == null) {
                    System.out.println(alias + ": FAIL no " + (key == null ? "private key" : "certificate"));
                    bad++;
                    continue;
                }
                Signature s = Signature.getInstance(alg, p);
                s.initSign(key);
                s.update(data);
                byte[] sig = s.sign();
                try (FileOutputStream out = new FileOutputStream(Path.of(args[2], alias + ".sig").toFile())) {
                    out.write(sig);
                }
                // The default (software) provider, with the certificate's public key.
                Signature v = Signature.getInstance(alg);
                v.initVerify(cert.getPublicKey());
                v.update(data);
                boolean ok = v.verify(sig);
                // The token, with the same public key (imported as a session object).
                Signature tv = Signature.getInstance(alg, p);
                tv.initVerify(cert.getPublicKey());
                tv.update(data);
                boolean tok = tv.verify(sig);
                // A changed message must not verify.
                tv.initVerify(cert.getPublicKey());
                tv.update("changed".getBytes(StandardCharsets.UTF_8));
                boolean tbad = tv.verify(sig);
                System.out.println(alias + ": " + alg + " by " + s.getProvider().getName() + ", key "
                        + key.getAlgorithm() + ", " + sig.length + "-byte signature; verified by "
                        + v.getProvider().getName() + ": " + ok + ", by the token: " + tok
                        + ", changed message rejected: " + !tbad);
                if (!ok || !tok || tbad) {
                    System.out.println(alias + ": FAIL");
                    bad++;
                }
            } catch (Exception e) {
                System.out.println(alias + ": FAIL " + e);
                e.printStackTrace(System.out);
                bad++;
            }
        }
        System.exit(bad == 0 ? 0 : 1);
    }
}
