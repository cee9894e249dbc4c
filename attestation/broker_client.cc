#include "attestation/broker_client.h"

#include "attestation/broker_protocol.h"

namespace vmm::attestation {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// A "refused" answer as an error; any other type than `expected` as a protocol error.
Result<void> ExpectType(const std::string& answer, std::string_view expected) {
  ASSIGN_OR_RETURN(std::string type, MessageType(Bytes(answer)));
  if (type == "refused") {
    ASSIGN_OR_RETURN(RefusedMessage refused, ParseRefused(Bytes(answer)));
    return Error(ErrorKind::kProtocol, "the broker refused: " + refused.reason);
  }
  if (type != expected) {
    return Error(ErrorKind::kProtocol, "the broker answered \"" + type.substr(0, 32) +
                                           "\" where \"" + std::string(expected) + "\" was due");
  }
  return Ok();
}

}  // namespace

Result<BrokerOutcome> FetchSecret(std::string_view secret_name, const BrokerTransport& send,
                                  const QuoteForData& quote) {
  RETURN_IF_ERROR(CheckSecretName(secret_name));
  const std::string name(secret_name);
  ASSIGN_OR_RETURN(std::string challenge_text, send(SerializeRequest({name})));
  RETURN_IF_ERROR(ExpectType(challenge_text, "challenge"));
  ASSIGN_OR_RETURN(ChallengeMessage challenge, ParseChallenge(Bytes(challenge_text)));

  ASSIGN_OR_RETURN(EvpPkeyPtr key, NewEphemeralKey());
  AttestationMessage attestation;
  attestation.secret = name;
  attestation.nonce = challenge.nonce;
  ASSIGN_OR_RETURN(attestation.public_key, PublicPoint(key.get()));
  auto evidence = quote(BindingData(challenge.nonce, attestation.public_key));
  if (!evidence) return evidence.error().Wrap("quoting for the broker's challenge");
  attestation.evidence = std::move(*evidence);

  ASSIGN_OR_RETURN(std::string response_text, send(SerializeAttestation(attestation)));
  RETURN_IF_ERROR(ExpectType(response_text, "response"));
  ASSIGN_OR_RETURN(ResponseMessage response, ParseResponse(Bytes(response_text)));
  if (!response.sealed) {
    return Error(ErrorKind::kProtocol,
                 "the broker withheld the secret (" + response.verdict + "): " + response.reason);
  }
  if (response.verdict != "affirming") {
    return Error(ErrorKind::kProtocol,
                 "the broker sent a secret with verdict \"" + response.verdict + "\"");
  }
  auto secret = OpenSecret(*response.sealed, key.get(), challenge.nonce, name);
  if (!secret) return secret.error();
  return BrokerOutcome{std::move(*secret), response.verdict, response.ear};
}

}  // namespace vmm::attestation
