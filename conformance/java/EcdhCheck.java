// conformance/run: ECDH through Java's SunPKCS11 provider with a token's P-256
// private key, against a software (SunEC) peer.
//
// usage: java -cp DIR EcdhCheck CONFIG PIN ALIAS
// Prints "ecdh: equal" and exits 0 when both sides agree on the secret.

import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import javax.crypto.KeyAgreement;

public class EcdhCheck {
    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        PrivateKey key = (PrivateKey) ks.getKey(args[2], null);
        if (key == null) {
            System.out.println("ecdh: FAIL no private key " + args[2]);
            System.exit(1);
        }
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC", "SunEC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair peer = g.generateKeyPair();
        // The token: C_DeriveKey (CKM_ECDH1_DERIVE, CKD_NULL), then CKA_VALUE of the new key.
        KeyAgreement ours = KeyAgreement.getInstance("ECDH", p);
        ours.init(key);
        ours.doPhase(peer.getPublic(), true);
        byte[] a = ours.generateSecret();
        KeyAgreement theirs = KeyAgreement.getInstance("ECDH", "SunEC");
        theirs.init(peer.getPrivate());
        theirs.doPhase(ks.getCertificate(args[2]).getPublicKey(), true);
        byte[] b = theirs.generateSecret();
        boolean same = Arrays.equals(a, b);
        System.out.println("ecdh: " + (same ? "equal" : "FAIL differ") + " (" + a.length + " bytes, by "
                + ours.getProvider().getName() + ")");
        System.exit(same ? 0 : 1);
    }
}
