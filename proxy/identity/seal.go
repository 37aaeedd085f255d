package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer encrypts the plain identifiers a conversion's sender gave, so they can wait in
// storage for the consumers that forward them (ad platforms and SMS tools match people
// on the plain or SHA-256 value, which a keyed hash cannot give them) without being
// readable at rest. AES-256-GCM under a key derived from the server secret; the record
// they belong to is bound as additional data, so a sealed value cannot be moved to
// another record.
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the sealing key from the server secret.
func NewSealer(secret []byte) (*Sealer, error) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("clickgate/user-seal/v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("identity: sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("identity: sealer: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain for the record named by ad: a random nonce, then the ciphertext.
func (s *Sealer) Seal(plain, ad []byte) []byte {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic("identity: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return s.aead.Seal(out, out, plain, ad)
}

// ErrUnsealable means a sealed value was altered, belongs to another record, or was
// sealed under another secret.
var ErrUnsealable = errors.New("identity: sealed value does not open")

// Open decrypts a value from Seal for the same record.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrUnsealable
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}
