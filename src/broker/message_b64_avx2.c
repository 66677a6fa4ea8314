/*
 * AVX2 kernels of the message body base64 codec (message_b64.c). Each loop
 * iteration handles 24 bytes of data against 32 characters of text, the
 * byte-shuffle and multiply method that SIMD base64 codecs use. The kernels
 * handle only whole blocks and leave the rest, padding included, to the
 * scalar code. The functions are compiled for AVX2 with a target attribute
 * and run only after cmi_b64_avx2_usable() found the CPU supports it, so the
 * rest of the library keeps the baseline x86-64 instruction set.
 */
#include "broker/message_json_int.h"

#if CMI_B64_HAVE_AVX2

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

bool cmi_b64_avx2_usable(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") != 0;
}

/*
 * Each 3 bytes a b c go to a 32-bit lane as the bytes b a c b, so that the
 * little-endian 16-bit halves are (a:b) and (b:c). A high-half multiply
 * moves the first and third sextets down to bits 0-5 of their byte, a
 * low-half multiply moves the second and fourth up to bits 8-13, and an OR
 * gives one sextet per byte in output order.
 */
AVX2 static __m256i enc_sextets(__m256i in)
{
	const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0, 2,
						1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
	__m256i v = _mm256_shuffle_epi8(in, spread);
	__m256i first_third = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00)),
						 _mm256_set1_epi32(0x04000040));
	__m256i second_fourth = _mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0)),
						   _mm256_set1_epi32(0x01000010));

	return _mm256_or_si256(first_third, second_fourth);
}

/*
 * Maps sextets to the alphabet by adding an offset chosen per range:
 * 0-25 'A', 26-51 'a' - 26, 52-61 '0' - 52, 62 '+' - 62, 63 '/' - 63. A
 * saturating subtract of 51 gives 0 for 0-51 and 1-12 above. The range
 * 0-25 is then moved to 13, so a 16-entry table contains every offset.
 */
AVX2 static __m256i enc_ascii(__m256i sextets)
{
	const __m256i offsets = _mm256_setr_epi8(
		'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
		'0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0, 'a' - 26, '0' - 52, '0' - 52, '0' - 52,
		'0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A',
		0, 0);
	__m256i index = _mm256_subs_epu8(sextets, _mm256_set1_epi8(51));
	__m256i below26 = _mm256_cmpgt_epi8(_mm256_set1_epi8(26), sextets);

	index = _mm256_or_si256(index, _mm256_and_si256(below26, _mm256_set1_epi8(13)));
	return _mm256_add_epi8(sextets, _mm256_shuffle_epi8(offsets, index));
}

AVX2 size_t cmi_b64_encode_blocks_avx2(char *out, const unsigned char *in, size_t len)
{
	size_t i = 0;

	/* The second load reads 16 bytes from i + 12, so 4 bytes past the
	 * block must exist. */
	for (; i + 28 <= len; i += 24) {
		__m128i low = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
		__m128i high = _mm_loadu_si128((const __m128i *)(const void *)(in + i + 12));
		__m256i block = _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);

		_mm256_storeu_si256((__m256i *)(void *)out, enc_ascii(enc_sextets(block)));
		out += 32;
	}
	return i;
}

/*
 * Checks and translates 32 characters. Each high nibble has a class bit,
 * and each low nibble has the set of classes it is invalid with, so a
 * character is valid when the two have no bit in common. The classes:
 *  - bit 0: high nibbles outside 2-7, invalid with every low nibble;
 *  - bit 1: high nibble 2, valid only with B and F ('+' and '/');
 *  - bit 2: high nibble 3, valid with 0-9;
 *  - bit 3: high nibbles 4 and 6, invalid with 0;
 *  - bit 4: high nibbles 5 and 7, valid up to A.
 * The value is the character plus an offset chosen by its high nibble,
 * with '/' moved to an entry of its own. Returns the values and ORs the
 * invalid bits into *bad.
 */
AVX2 static __m256i dec_values(__m256i text, __m256i *bad)
{
	const __m256i invalid_for_low = _mm256_setr_epi8(
		0x0b, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x07, 0x15, 0x17, 0x17, 0x17,
		0x15, 0x0b, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x07, 0x15, 0x17, 0x17, 0x17,
		0x15);
	const __m256i class_of_high = _mm256_setr_epi8(1, 1, 2, 4, 8, 0x10, 8, 0x10, 1, 1, 1, 1, 1, 1, 1, 1,
							1, 1, 2, 4, 8, 0x10, 8, 0x10, 1, 1, 1, 1, 1, 1, 1, 1);
	const __m256i offsets = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0,
						 0, 0, 0, 0, 0, 0, 0, 16, 19, 4, -65, -65, -71, -71, 0, 0,
						 0, 0, 0, 0, 0, 0);
	const __m256i nibble = _mm256_set1_epi8(0x0f);
	__m256i high = _mm256_and_si256(_mm256_srli_epi32(text, 4), nibble);
	__m256i low = _mm256_and_si256(text, nibble);
	__m256i classes = _mm256_and_si256(_mm256_shuffle_epi8(invalid_for_low, low),
					   _mm256_shuffle_epi8(class_of_high, high));
	/* '/' (0x2f) takes entry 1: its high nibble 2 plus the -1 of the
	 * compare. */
	__m256i slash = _mm256_cmpeq_epi8(text, _mm256_set1_epi8(0x2f));

	*bad = _mm256_or_si256(*bad, classes);
	return _mm256_add_epi8(text, _mm256_shuffle_epi8(offsets, _mm256_add_epi8(high, slash)));
}

/*
 * Packs the four sextets of each 32-bit lane into 24 bits. A byte multiply
 * joins pairs into 12 bits, and a word multiply joins those. A shuffle then
 * puts the three bytes of each lane in big-endian order at the bottom of
 * each 128-bit half, and a cross-lane permute joins the two halves.
 */
AVX2 static __m256i dec_pack(__m256i values)
{
	const __m256i order = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1,
					       0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
	__m256i pairs = _mm256_maddubs_epi16(values, _mm256_set1_epi32(0x01400140));
	__m256i words = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x00011000));
	__m256i bytes = _mm256_shuffle_epi8(words, order);

	return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
}

AVX2 size_t cmi_b64_decode_blocks_avx2(unsigned char *out, const char *text, size_t n, bool *bad)
{
	__m256i invalid = _mm256_setzero_si256();
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		__m256i chars = _mm256_loadu_si256((const __m256i *)(const void *)(text + i));
		__m256i data = dec_pack(dec_values(chars, &invalid));

		/* Exactly 24 bytes, so the output buffer needs no slack. */
		_mm_storeu_si128((__m128i *)(void *)out, _mm256_castsi256_si128(data));
		_mm_storel_epi64((__m128i *)(void *)(out + 16), _mm256_extracti128_si256(data, 1));
		out += 24;
	}
	if (!_mm256_testz_si256(invalid, invalid))
		*bad = true;
	return i;
}

#endif
