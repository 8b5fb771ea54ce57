<?php
/*
 * The remote SP (Portcullis): read from the SP metadata XML that the test
 * fetched from Portcullis' <prefix>/metadata and wrote to
 * SSP_TEST_WORK/sp-metadata.xml (absent until the SP has started; then no SP
 * is known and requests are refused).
 *
 * Whatever the XML says about AuthnRequestsSigned, this IdP requires and
 * verifies the signatures of AuthnRequests and logout messages.  It signs
 * the Assertion whatever the SP metadata's WantAssertionsSigned says (ours
 * says "true"), so that a test can turn signing off on purpose.  A test can
 * override any of these options for a run with SSP_TEST_WORK/sp-options.json
 * (a JSON object merged into every SP entry; see
 * tests/e2e/simplesamlphp.py, set_sp_metadata()).
 */

$work = getenv('SSP_TEST_WORK');
$file = $work . '/sp-metadata.xml';
$options = [
    'validate.authnrequest' => true,
    'validate.logout' => true,
    'saml20.sign.assertion' => true,
];
if (is_file($work . '/sp-options.json')) {
    $extra = json_decode(file_get_contents($work . '/sp-options.json'), true, 8, JSON_THROW_ON_ERROR);
    $options = array_merge($options, $extra);
}
if (is_file($file)) {
    foreach (\SimpleSAML\Metadata\SAMLParser::parseDescriptorsFile($file) as $entity) {
        $sp = $entity->getMetadata20SP();
        if ($sp === null) {
            continue;
        }
        $metadata[$sp['entityid']] = array_merge($sp, $options);
    }
}
