/* The attestation key's template (ARCHITECTURE.md §6): the marshalled TPM2B_PUBLIC that
 * TPM2_CreatePrimary under TPM_RH_ENDORSEMENT turns into the AK, the same key the manager
 * quotes with and the host CA certified at `vmm vtpm provision`. It must equal
 * vtpm/provision's AkTemplateBytes() byte for byte (a unit test compares them): a restricted
 * ECC NIST P-256 signing key, ECDSA with SHA-256, nameAlg SHA-256, fixedTPM | fixedParent |
 * sensitiveDataOrigin | userWithAuth | restricted | sign, empty authPolicy, unique = two
 * 32-byte zero coordinates. Plain C with <stdint.h> only, so host tests include it too.
 */
#ifndef GUEST_AK_TEMPLATE_H
#define GUEST_AK_TEMPLATE_H

#include <stdint.h>

#define AK_TEMPLATE_SIZE 90
#define AK_PUBLIC_HEAD 20 /* type .. kdf: the bytes after the size that outPublic repeats */

static const uint8_t ak_template[AK_TEMPLATE_SIZE] = {
	0x00, 0x58,             /* size of the TPMT_PUBLIC: 88 */
	0x00, 0x23,             /* type TPM_ALG_ECC */
	0x00, 0x0b,             /* nameAlg TPM_ALG_SHA256 */
	0x00, 0x05, 0x04, 0x72, /* objectAttributes (noDA: see the VMM's ak_template.h) */
	0x00, 0x00,             /* authPolicy: empty */
	0x00, 0x10,             /* symmetric TPM_ALG_NULL */
	0x00, 0x18, 0x00, 0x0b, /* scheme TPM_ALG_ECDSA, SHA-256 */
	0x00, 0x03,             /* curveID TPM_ECC_NIST_P256 */
	0x00, 0x10,             /* kdf TPM_ALG_NULL */
	0x00, 0x20,             /* unique.x: 32 zero bytes */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x00, 0x20,             /* unique.y: 32 zero bytes */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

#endif
