// Interop checks with implementations that share no code with authsvc.
// Input (JSON on stdin): { addr, proto_dir, issuer, audience, client_id, client_secret,
//                          jwe_token?, jwe_private_jwk? }
// Output (JSON on stdout): what each check saw; the Python test asserts on it.
import { readFileSync } from "node:fs";
import * as jose from "jose";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const input = JSON.parse(readFileSync(0, "utf8"));
const out = {};

const definition = protoLoader.loadSync("authsvc/v1/auth.proto", {
  includeDirs: [input.proto_dir],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const { AuthService } = grpc.loadPackageDefinition(definition).authsvc.v1;
const client = new AuthService(input.addr, grpc.credentials.createInsecure());
const call = (method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, { deadline: Date.now() + 10_000 }, (err, reply) => (err ? reject(err) : resolve(reply))),
  );

// 1. gRPC from grpc-js: Issue with client credentials, then Verify.
const issued = await call("Issue", {
  client: { client_id: input.client_id, client_secret: input.client_secret },
  audience: [input.audience],
});
const token = issued.tokens.access_token;
const verified = await call("Verify", { token, audience: input.audience });
out.grpc = { active: verified.active, sub: verified.claims?.sub, reason: verified.reason };
try {
  await call("Issue", { client: { client_id: input.client_id, client_secret: "wrong" } });
  out.grpc.bad_secret = "OK";
} catch (err) {
  out.grpc.bad_secret = grpc.status[err.code];
  out.grpc.bad_secret_details = err.details;
}

// 2. JOSE: verify the token with only the published JWKS, algorithms pinned.
const jwks = JSON.parse((await call("GetJWKS", {})).jwks_json);
const keySet = jose.createLocalJWKSet(jwks);
const { payload, protectedHeader } = await jose.jwtVerify(token, keySet, {
  issuer: input.issuer,
  audience: input.audience,
  algorithms: ["EdDSA"],
  typ: "at+jwt",
});
out.jws = { sub: payload.sub, alg: protectedHeader.alg, typ: protectedHeader.typ };
try {
  await jose.jwtVerify(token, keySet, { issuer: input.issuer, audience: "someone-else", algorithms: ["EdDSA"] });
  out.jws.wrong_audience = "accepted";
} catch (err) {
  out.jws.wrong_audience = err.code;
}

// 3. JWE: decrypt a nested token with the audience's private key, verify the inner JWS.
if (input.jwe_token) {
  const key = await jose.importJWK(input.jwe_private_jwk, input.jwe_private_jwk.alg);
  const { plaintext, protectedHeader: jweHeader } = await jose.compactDecrypt(input.jwe_token, key, {
    keyManagementAlgorithms: ["ECDH-ES+A256KW", "RSA-OAEP-256"],
    contentEncryptionAlgorithms: ["A256GCM"],
  });
  const inner = new TextDecoder().decode(plaintext);
  const { payload: innerClaims } = await jose.jwtVerify(inner, keySet, {
    issuer: input.issuer,
    audience: input.jwe_audience,
    algorithms: ["EdDSA"],
  });
  out.jwe = { alg: jweHeader.alg, enc: jweHeader.enc, cty: jweHeader.cty, sub: innerClaims.sub };
}

client.close();
process.stdout.write(JSON.stringify(out));
