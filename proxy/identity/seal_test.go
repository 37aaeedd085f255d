package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealer(t *testing.T) {
	s, err := NewSealer([]byte("server secret"))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"email":"ann@example.com"}`)
	ad := []byte("conversion-1")
	sealed := s.Seal(plain, ad)
	if bytes.Contains(sealed, []byte("ann@example.com")) {
		t.Fatal("sealed value carries the plain text")
	}
	if again := s.Seal(plain, ad); bytes.Equal(again, sealed) {
		t.Error("two seals of the same value are equal: the nonce is not random")
	}
	got, err := s.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := NewSealer([]byte("another secret"))
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	for name, tc := range map[string]struct {
		s      *Sealer
		sealed []byte
		ad     []byte
	}{
		"other record":  {s, sealed, []byte("conversion-2")},
		"other secret":  {other, sealed, ad},
		"altered":       {s, flipped, ad},
		"truncated":     {s, sealed[:10], ad},
		"empty":         {s, nil, ad},
		"only a nonce":  {s, sealed[:12], ad},
		"nonce and tag": {s, sealed[:28], ad},
	} {
		if _, err := tc.s.Open(tc.sealed, tc.ad); !errors.Is(err, ErrUnsealable) {
			t.Errorf("%s: Open err = %v, want ErrUnsealable", name, err)
		}
	}
}
